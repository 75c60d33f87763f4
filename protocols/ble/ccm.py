# AES-CCM (RFC 3610) for MicroPython, where `cryptography` cannot be imported: a CTR keystream and a
# CBC-MAC, both built on cryptolib's AES-ECB (the one mode every port has). Only what BTHome v2
# needs: 13-byte nonce (L = 2), 4-byte MIC (M = 4), no associated data. The CPython side uses
# cryptography's AESCCM with the same call shape.
from cryptolib import aes

from ..errors import DecodeError

try:
    from micropython import const
except ImportError:

    def const(x):
        return x


_MIC_LEN = const(4)
_NONCE_LEN = const(13)
_B0_FLAGS = const(0x09)  # no AAD, M' = (M - 2) / 2 = 1, L' = L - 1 = 1
_A_FLAGS = const(0x01)  # L' = 1
_ECB = const(1)


# BTHome's parameters, all this CCM takes: one message for any other
_ONLY = const("CCM here takes a 16-byte key, a 13-byte nonce, a 4-byte MIC and no associated data")


class CCM:
    def __init__(self, key, tag_length=_MIC_LEN):
        if len(key) != 16 or tag_length != _MIC_LEN:
            raise ValueError(_ONLY)
        self._ecb = aes(bytes(key), _ECB)

    def encrypt(self, nonce, data, associated_data):
        """Returns ciphertext + MIC."""
        stream = self._keystream(nonce, associated_data, len(data))
        out = _xor(data, stream, 16)
        tag = self._mac(nonce, data)
        for i in range(_MIC_LEN):
            out.append(tag[i] ^ stream[i])
        return bytes(out)

    def decrypt(self, nonce, data, associated_data):
        """Returns the plaintext of ciphertext + MIC; DecodeError when the MIC does not match."""
        size = len(data) - _MIC_LEN
        # the keystream checks the nonce and associated data, which go before the length
        stream = self._keystream(nonce, associated_data, size)
        if size < 0:
            raise DecodeError("CCM input shorter than its MIC")
        plain = _xor(data[:size], stream, 16)
        tag = self._mac(nonce, plain)
        diff = 0
        for i in range(_MIC_LEN):
            diff |= tag[i] ^ stream[i] ^ data[size + i]
        if diff:
            raise DecodeError("MIC mismatch")
        return bytes(plain)

    def _keystream(self, nonce, associated_data, size):
        # S_0 (masks the MIC) then S_1.. (mask the data), all counter blocks in one ECB call.
        if len(nonce) != _NONCE_LEN or associated_data is not None:
            raise ValueError(_ONLY)
        head = bytes((_A_FLAGS,)) + nonce
        blocks = bytearray()
        for i in range((size + 15) // 16 + 1):
            blocks += head + bytes((i >> 8, i & 0xFF))
        return self._ecb.encrypt(blocks)

    def _mac(self, nonce, plain):
        size = len(plain)
        x = self._ecb.encrypt(bytes((_B0_FLAGS,)) + nonce + bytes((size >> 8, size & 0xFF)))
        for start in range(0, size, 16):
            block = bytearray(x)
            for i, byte in enumerate(plain[start : start + 16]):
                block[i] ^= byte
            x = self._ecb.encrypt(block)
        return x


def _xor(data, stream, offset):
    out = bytearray(data)
    for i in range(len(out)):
        out[i] ^= stream[offset + i]
    return out
