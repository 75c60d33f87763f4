# Li-Fi MAC frames: what one PHY payload (lifi_phy.encode_frame) carries, sans-I/O.
# Byte-by-byte layout and the carousel that sends them: docs/lifi-content.md.
#
# Two frame types, both starting with one byte (MAC version << 4 | type) and the content version:
#   directory: the exhibit, its transfers (RaptorQ, RFC 6330, one OTI each) and its objects (id,
#              type, size, SHA-256, priority, which transfer carries it);
#   symbol:    one RaptorQ encoding packet (FEC Payload ID + symbol) of one transfer.
# A transfer is the concatenation of its objects in directory order, fountain-coded as one RaptorQ
# object: objects of one priority travel together so that any frame received helps all of them.
# Comments rather than docstrings: MicroPython keeps docstrings in RAM while compiling a module.
import struct

from .errors import DecodeError
from .topics import is_valid_id

try:
    from micropython import const
except ImportError:

    def const(x):
        return x


MAC_VERSION = const(1)
DIRECTORY = const(1)
SYMBOL = const(2)

SYMBOL_OVERHEAD = const(10)  # header, content version, transfer index, FEC Payload ID
OTI_BYTES = const(12)  # RFC 6330 3.3.2 + 3.3.3: F (40 bits), reserved, T, Z, N, Al
SHA256_BYTES = const(32)
MAX_TYPE_CHARS = const(64)
_MAX_TRANSFER_LENGTH = const(942574504275)  # RFC 6330 F limit (errata 5548)
_TYPE_CHARS = b"abcdefghijklmnopqrstuvwxyz0123456789!#$&-^_.+/"


class Transfer:
    # One RaptorQ object: its Object Transmission Information (RFC 6330 section 3.3).
    def __init__(self, length, symbol_size, source_blocks=1, sub_blocks=1, alignment=8):
        self.length = length  # F, bytes
        self.symbol_size = symbol_size  # T, bytes
        self.source_blocks = source_blocks  # Z
        self.sub_blocks = sub_blocks  # N
        self.alignment = alignment  # Al

    def oti(self):
        return struct.pack(
            ">BIBH", self.length >> 32, self.length & 0xFFFFFFFF, 0, self.symbol_size
        ) + struct.pack(">BHB", self.source_blocks, self.sub_blocks, self.alignment)

    def __eq__(self, other):
        return isinstance(other, Transfer) and self.oti() == other.oti()


class Entry:
    # One content object as listed in the directory.
    def __init__(self, id, type, size, sha256, priority, transfer):
        self.id = id
        self.type = type  # a media type, e.g. "image/webp"
        self.size = size  # bytes
        self.sha256 = sha256  # 32 bytes
        self.priority = priority  # 0 = first glimpse, then 1, 2, ...
        self.transfer = transfer  # index into Directory.transfers


class Directory:
    def __init__(self, exhibit, version, transfers, objects):
        self.exhibit = exhibit
        self.version = version  # content version, 0 .. 2**32 - 1
        self.transfers = transfers  # [Transfer]
        self.objects = objects  # [Entry], in transfer order


class Symbol:
    def __init__(self, version, transfer, packet):
        self.version = version
        self.transfer = transfer  # index into Directory.transfers
        self.packet = packet  # RaptorQ encoding packet: SBN (1 byte), ESI (3 bytes), symbol

    def sbn(self):
        return self.packet[0]

    def esi(self):
        return struct.unpack(">I", self.packet[:4])[0] & 0xFFFFFF


def _header(kind, version):
    if not 0 <= version <= 0xFFFFFFFF:
        raise ValueError("content version out of range: %r" % version)
    return struct.pack(">BI", MAC_VERSION << 4 | kind, version)


def _short(text):
    raw = text.encode()
    if len(raw) > 255:
        raise ValueError("too long for the directory: %r" % text)
    return bytes((len(raw),)) + raw


def encode_directory(directory):
    out = [_header(DIRECTORY, directory.version), _short(directory.exhibit)]
    out.append(bytes((len(directory.transfers),)))
    for transfer in directory.transfers:
        out.append(transfer.oti())
    out.append(bytes((len(directory.objects),)))
    for entry in directory.objects:
        if len(entry.sha256) != SHA256_BYTES:
            raise ValueError("sha256 of %s must be 32 bytes" % entry.id)
        out.append(struct.pack(">BB", entry.transfer, entry.priority))
        out.append(_short(entry.id))
        out.append(_short(entry.type))
        out.append(struct.pack(">I", entry.size))
        out.append(entry.sha256)
    return b"".join(out)


def encode_symbol(version, transfer, packet):
    # packet: a RaptorQ encoding packet as serialised by RFC 6330 (FEC Payload ID + symbol)
    if len(packet) < 5:
        raise ValueError("a RaptorQ packet is a 4-byte payload id and a symbol")
    return _header(SYMBOL, version) + bytes((transfer,)) + packet


class _Reader:
    def __init__(self, frame):
        self.frame = frame
        self.at = 0

    def take(self, n, what):
        end = self.at + n
        if end > len(self.frame):
            raise DecodeError("lifi-mac: truncated in %s" % what)
        chunk = self.frame[self.at : end]
        self.at = end
        return chunk

    def byte(self, what):
        return self.take(1, what)[0]

    def text(self, what, allowed):
        raw = self.take(self.byte(what), what)
        for b in raw:
            if b not in allowed:
                raise DecodeError("lifi-mac: %s has a byte 0x%02x not allowed there" % (what, b))
        return bytes(raw).decode()


def _transfer(reader, n):
    f_high, f_low, reserved, t = struct.unpack(">BIBH", reader.take(8, "transfer %d" % n))
    z, sub, al = struct.unpack(">BHB", reader.take(4, "transfer %d" % n))
    length = f_high << 32 | f_low
    if reserved:
        raise DecodeError("lifi-mac: transfer %d has a non-zero reserved OTI byte" % n)
    if not 0 < length <= _MAX_TRANSFER_LENGTH:
        raise DecodeError("lifi-mac: transfer %d length %d out of range" % (n, length))
    if not (t and z and sub and al) or t % al:
        raise DecodeError(
            "lifi-mac: transfer %d has invalid T=%d Z=%d N=%d Al=%d" % (n, t, z, sub, al)
        )
    return Transfer(length, t, z, sub, al)


def _entry(reader, n, transfers):
    what = "object %d" % n
    transfer, priority = struct.unpack(">BB", reader.take(2, what))
    id = reader.text(what + " id", _TYPE_CHARS)
    if not is_valid_id(id):
        raise DecodeError("lifi-mac: object id %r must match [a-z0-9][a-z0-9-]{0,63}" % id)
    type = reader.text(what + " type", _TYPE_CHARS)
    if not 0 < len(type) <= MAX_TYPE_CHARS or type.count("/") != 1:
        raise DecodeError("lifi-mac: object %s type %r is not a media type" % (id, type))
    size = struct.unpack(">I", reader.take(4, what))[0]
    sha256 = bytes(reader.take(SHA256_BYTES, what))
    if transfer >= transfers:
        raise DecodeError("lifi-mac: object %s names transfer %d of %d" % (id, transfer, transfers))
    return Entry(id, type, size, sha256, priority, transfer)


def _directory(reader, version):
    exhibit = reader.text("exhibit", _TYPE_CHARS)
    if not is_valid_id(exhibit):
        raise DecodeError("lifi-mac: exhibit %r must match [a-z0-9][a-z0-9-]{0,63}" % exhibit)
    transfers = [_transfer(reader, n) for n in range(reader.byte("transfer count"))]
    objects = [_entry(reader, n, len(transfers)) for n in range(reader.byte("object count"))]
    ids = set()
    for entry in objects:
        if entry.id in ids:
            raise DecodeError("lifi-mac: object id %s listed twice" % entry.id)
        ids.add(entry.id)
    if reader.at != len(reader.frame):
        raise DecodeError(
            "lifi-mac: %d bytes after the directory" % (len(reader.frame) - reader.at)
        )
    carried = [0] * len(transfers)
    for entry in objects:
        carried[entry.transfer] += entry.size
    for n, transfer in enumerate(transfers):
        if carried[n] != transfer.length:
            raise DecodeError(
                "lifi-mac: transfer %d is %d bytes but its objects add up to %d"
                % (n, transfer.length, carried[n])
            )
    return Directory(exhibit, version, transfers, objects)


def decode(frame):
    # A Directory or a Symbol; DecodeError for anything else.
    reader = _Reader(frame)
    head, version = struct.unpack(">BI", reader.take(5, "header"))
    if head >> 4 != MAC_VERSION:
        raise DecodeError("lifi-mac: MAC version %d, expected %d" % (head >> 4, MAC_VERSION))
    kind = head & 0x0F
    if kind == DIRECTORY:
        return _directory(reader, version)
    if kind == SYMBOL:
        transfer = reader.byte("transfer index")
        if len(frame) - reader.at < 5:
            raise DecodeError("lifi-mac: truncated in symbol")
        return Symbol(version, transfer, bytes(frame[reader.at :]))
    raise DecodeError("lifi-mac: unknown frame type %d" % kind)
