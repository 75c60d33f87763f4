"""`luciole decode KIND HEX` and `luciole encode senml`: what a device is saying, as JSON.

For field technicians and city integrators. The decoding is the gateway's own (protocols/), so
what this prints is what the gateway understands, and a frame it refuses is refused here with the
reason. Bad input of any kind is one line on stderr and exit status 2 (UsageError).
"""

import argparse
import io
import json
import math
import re
import sys
import time
from collections.abc import Mapping

import cbor2

from luciole.protocols import link, senml
from luciole.protocols.ble import adv, bthome, eddystone, ibeacon
from luciole.protocols.cbor import MAX_DEPTH
from luciole.protocols.errors import DecodeError

from .cli import UsageError

KINDS = ("cbor", "senml", "frame", "ibeacon", "eddystone", "bthome")
BLE_KINDS = ("ibeacon", "eddystone", "bthome")

# Where each BLE payload sits in the advertising data: (table of adv.parse, key, what it is)
_BLE_PAYLOAD = {
    "ibeacon": ("manufacturer_data", ibeacon.COMPANY_ID, "Apple manufacturer data (0x004C)"),
    "eddystone": ("service_data", eddystone.UUID16, "service data for UUID 0xFEAA"),
    "bthome": ("service_data", bthome.UUID16, "service data for UUID 0xFCD2"),
}

_FRAME_TYPES = {
    getattr(link, name): name
    for name in ("HELLO", "READING", "EVENT", "COMMAND", "RESPONSE", "ACK", "NACK", "LOG", "LIFI")
}
_FRAME_ERRORS = {
    "oversized": f"longer than the longest frame ({link.max_wire_bytes() + 1} bytes on the wire)",
    "cobs": "bad COBS stuffing (a code byte of 0, or one pointing past the end)",
    "truncated": "truncated: fewer than 9 bytes once unstuffed (header and CRC)",
    "version": "unknown link version (byte 0 of the frame is not 1)",
    "crc": "CRC-32 mismatch: the frame is damaged",
    "type": "unknown frame type",
    "flags": "reserved flag bits set",
}

DECODE_EPILOG = """\
examples:
  luciole decode cbor a26161016162820203
  luciole decode senml '[{"n":"urn:dev:ow:10e2073a01080063","u":"Cel","v":23.1}]'
  luciole decode senml 81a3006474656d70016343656c02fb403719999999999a
  luciole decode frame 04 01 02 01 0a 07 a1 64 74 65 6d 70 f9 49 05 a0 87 c2 23 00
  luciole decode ibeacon 0201061aff4c000215e2c56db5dffb48d2b060d0f5a71096e00001000ac5
  luciole decode eddystone --payload 20:00:0b:b8:16:80:00:00:04:d2:00:00:30:39
  luciole decode bthome 0201061216d2fc41e445f3c9962b332211006c7c4519 \\
      --key 231d39c1d7cc1ab1aee224cd096db932 --mac 54:48:E6:8F:80:A5

input:
  HEX is hex digits, optionally split by spaces or colons, or several arguments, each may start
  with 0x; "-" reads it from stdin. For senml it may also be SenML JSON text (starting with "[").
  For ibeacon, eddystone and bthome it is the raw advertising data (AD structures, as nRF Connect
  or btmon show it), of which the Apple manufacturer data (0x004C) or the service data of UUID
  0xFEAA or 0xFCD2 is decoded; with --payload it is only that payload (after the company id or
  UUID). An encrypted BTHome frame needs the device's key (--key) and MAC address (--mac).

output (JSON on stdout, indented on a terminal, one line otherwise or with --compact):
  cbor       the item. Byte strings are hex strings, tags {"tag": n, "value": v} (bignums are
             numbers), other simple values {"simple": n}, NaN and infinities the strings "NaN",
             "Infinity", "-Infinity"; map keys that are not text are written as JSON text
             (1 -> "1"); a map whose keys then collide is {"map": [[key, value], ...]}.
  senml      always both {"pack": the pack, "resolved": its records resolved (RFC 8428 section
             4.6: full names, absolute times, base values added; times below 2**28 count from
             --now)}, as SenML JSON (vd in base64url): `jq .pack` of it goes back into
             `luciole encode senml`.
  frame      {"type", "seq", "flags", "ack_requested", "body_length", "body_format": "cbor",
             "hex" or "empty", "body"}: the body decoded as CBOR when it is one CBOR item,
             otherwise its hex.
  ibeacon    {"uuid", "major", "minor", "tx_power_dbm"}
  eddystone  {"frame": "uid", "tx_power_dbm", "namespace", "instance"}, {"frame": "url",
             "tx_power_dbm", "url"} or {"frame": "tlm", "battery_mv", "temperature_c",
             "adv_count", "uptime_s"}
  bthome     {"version", "encrypted", "trigger", "packet_id", "counter", "measurements": [{"id",
             "name", "value", "unit"}]}

Bad input (not hex, a frame that does not decode, a wrong key...): one line on stderr naming
what is wrong, exit status 2.
"""

ENCODE_EPILOG = """\
examples:
  echo '[{"bn":"urn:dev:ow:10e2073a01080063:","n":"temp","u":"Cel","v":23.1}]' \\
      | luciole encode senml
  luciole encode senml --json < pack.json
  luciole encode senml < pack.json | xargs luciole decode senml

The pack is checked as the gateway checks what it publishes (RFC 8428: names, one value per
record, known version, no must-understand fields); vd is base64url. Output: the
application/senml+cbor bytes in hex, or with --json the normalised application/senml+json.
Bad input: one line on stderr, exit status 2.
"""


def _add_parser(subparsers, name, **kwargs):
    return subparsers.add_parser(
        name, formatter_class=argparse.RawDescriptionHelpFormatter, **kwargs
    )


def decode_command(subparsers):
    parser = _add_parser(
        subparsers,
        "decode",
        help="decode what a device sends (CBOR, SenML, device-link frame, iBeacon, Eddystone, "
        "BTHome) and print it as JSON",
        description="Decodes bytes a device sent, as the gateway does, and prints them as JSON.",
        epilog=DECODE_EPILOG,
    )
    parser.add_argument("kind", metavar="KIND", choices=KINDS, help=", ".join(KINDS))
    parser.add_argument(
        "hex",
        metavar="HEX",
        nargs="+",
        help="the bytes in hex (spaces and colons allowed), or - to read them from stdin",
    )
    parser.add_argument(
        "--payload",
        action="store_true",
        help="ibeacon, eddystone, bthome: HEX is only the manufacturer or service data payload, "
        "not the whole advertising data",
    )
    parser.add_argument("--key", metavar="HEX", help="bthome: the device's key, 32 hex digits")
    parser.add_argument(
        "--mac", metavar="MAC", help="bthome: the device's MAC address, as 54:48:E6:8F:80:A5"
    )
    parser.add_argument(
        "--now",
        metavar="SECONDS",
        type=_seconds,
        help="senml: the receiver's clock (seconds since the epoch) that relative times count "
        "from; default: the current time",
    )
    parser.add_argument("--compact", action="store_true", help="print JSON on one line")
    parser.set_defaults(handler=run_decode)


def encode_command(subparsers):
    parser = _add_parser(
        subparsers,
        "encode",
        help="encode a SenML JSON pack from stdin as SenML CBOR (hex)",
        description="Reads a SenML JSON pack on stdin, checks it and prints it as SenML CBOR "
        "in hex (application/senml+cbor), or as normalised SenML JSON.",
        epilog=ENCODE_EPILOG,
    )
    parser.add_argument("kind", metavar="KIND", choices=("senml",), help="senml")
    parser.add_argument(
        "--json", action="store_true", help="print the normalised SenML JSON instead of CBOR hex"
    )
    parser.set_defaults(handler=run_encode)


# decode


def _seconds(text):
    try:
        return int(text)
    except ValueError:
        pass
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds")
    return value


def run_decode(args):
    kind = args.kind
    if (args.key is not None or args.mac is not None) and kind != "bthome":
        raise UsageError("--key and --mac are for bthome only")
    if args.payload and kind not in BLE_KINDS:
        raise UsageError("--payload is for ibeacon, eddystone and bthome only")
    if args.now is not None and kind != "senml":
        raise UsageError("--now is for senml only")
    text = " ".join(args.hex)
    if text == "-":
        text = _read_stdin()
    try:
        if kind == "senml" and text.lstrip().startswith("["):
            value = _senml(_json_pack(text), args.now)
        else:
            value = _DECODERS[kind](_hex_bytes(text), args)
    except DecodeError as e:
        message = str(e)
        raise UsageError(
            message if message.startswith(kind + ":") else f"{kind}: {message}"
        ) from None
    _print_json(value, args.compact)
    return 0


def _decode_cbor(data, args):
    return _jsonable(_cbor_loads(data))


def _decode_senml(data, args):
    return _senml(senml.decode_cbor(data), args.now)


def _decode_frame(data, args):
    if b"\x00" in data.strip(b"\x00"):
        raise UsageError("frame: 0x00 inside: that is more than one frame; give one at a time")
    try:
        frame = link.decode_frame(data)
    except link.FrameError as e:
        raise UsageError("frame: " + _FRAME_ERRORS.get(e.reason, e.reason)) from None
    out = {
        "type": _FRAME_TYPES[frame.type],
        "seq": frame.seq,
        "flags": frame.flags,
        "ack_requested": frame.ack_requested,
        "body_length": len(frame.body),
    }
    if not frame.body:
        out.update(body_format="empty", body=None)
    else:
        try:
            out.update(body_format="cbor", body=_jsonable(_cbor_loads(frame.body)))
        except DecodeError:
            out.update(body_format="hex", body=frame.body.hex())
    return out


def _decode_ibeacon(data, args):
    return ibeacon.decode(_ble_payload("ibeacon", data, args.payload))


def _decode_eddystone(data, args):
    return eddystone.decode(_ble_payload("eddystone", data, args.payload))


def _decode_bthome(data, args):
    payload = _ble_payload("bthome", data, args.payload)
    key = None if args.key is None else _key(args.key)
    mac = None if args.mac is None else _mac(args.mac)
    # the device-info byte, when it is BTHome v2, says whether the frame is encrypted
    encrypted = bool(payload) and payload[0] >> 5 == 2 and bool(payload[0] & 1)
    if encrypted and key is None:
        raise UsageError(
            "bthome: the frame is encrypted: give the device's key (--key, 32 hex digits) and "
            "its MAC address (--mac)"
        )
    if encrypted and mac is None:
        raise UsageError(
            "bthome: an encrypted frame needs the device's MAC address (--mac "
            "AA:BB:CC:DD:EE:FF): it is part of the nonce"
        )
    try:
        return bthome.decode(payload, mac, key)
    except bthome.DowngradeError:
        raise UsageError(
            "bthome: the frame is plaintext but --key was given: a device with a key must "
            "encrypt (the gateway refuses this frame as a downgrade); leave out --key to read it"
        ) from None
    except DecodeError as e:
        if "MIC" in str(e):
            raise UsageError(
                "bthome: wrong key or corrupted frame (MIC check failed; check --key and --mac)"
            ) from None
        raise


_DECODERS = {
    "cbor": _decode_cbor,
    "senml": _decode_senml,
    "frame": _decode_frame,
    "ibeacon": _decode_ibeacon,
    "eddystone": _decode_eddystone,
    "bthome": _decode_bthome,
}


def _ble_payload(kind, data, payload_only):
    if payload_only:
        return data
    hint = "; if HEX is only the payload, add --payload"
    try:
        parsed = adv.parse(data)
    except DecodeError as e:
        raise UsageError(f"{kind}: not advertising data: {e}{hint}") from None
    table, key, what = _BLE_PAYLOAD[kind]
    payload = parsed[table].get(key)
    if payload is None:
        others = [
            other
            for other, (other_table, other_key, _) in _BLE_PAYLOAD.items()
            if other_key in parsed[other_table]
        ]
        if others:
            hint = f"; it carries {' and '.join(others)}: try luciole decode {others[0]}"
        raise UsageError(f"{kind}: no {what} in the advertising data{hint}")
    return payload


def _key(text):
    digits = _hex_digits(text)
    if not re.fullmatch("[0-9a-fA-F]*", digits):
        raise UsageError("--key is not hex: give the device's key as 32 hex digits")
    if len(digits) != 32:
        raise UsageError(f"--key must be 32 hex digits (a 16-byte AES key), got {len(digits)}")
    return bytes.fromhex(digits)


def _mac(text):
    digits = text.strip().replace(":", "").replace("-", "")
    if not re.fullmatch("[0-9a-fA-F]{12}", digits):
        raise UsageError(f"--mac {text!r} is not a MAC address like 54:48:E6:8F:80:A5")
    return bytes.fromhex(digits)


# SenML


def _json_pack(text):
    # the JSON error, with its place, before the SenML checks (which say only "not JSON")
    try:
        json.loads(text)
    except json.JSONDecodeError as e:
        raise UsageError(f"senml: not JSON: {e}") from None
    except RecursionError:
        raise UsageError("senml: JSON nested too deeply") from None
    return senml.decode_json(text)


def _senml(pack, now):
    now = round(time.time(), 3) if now is None else now
    return {"pack": _senml_json(pack), "resolved": _senml_json(senml.resolve(pack, now))}


def _senml_json(pack):
    # SenML JSON as the gateway writes it (field order, vd in base64url), as a value to print
    return json.loads(senml.encode_json(pack))


# CBOR


class _EveryTag(Mapping):
    # cbor2's semantic decoders: every tag but the bignums (2, 3) is kept as CBORTag(tag, value),
    # as the compact codec on the devices keeps it, rather than turned into a datetime, Decimal,
    # UUID, set, shared reference... so the output shows what is on the wire.
    def __getitem__(self, tag):
        if tag in (2, 3):
            raise KeyError(tag)
        return lambda value, immutable: cbor2.CBORTag(tag, value)

    def __iter__(self):
        return iter(())

    def __len__(self):
        return 0


_EVERY_TAG = _EveryTag()


def _cbor_loads(data):
    stream = io.BytesIO(data)
    try:
        value = cbor2.CBORDecoder(
            stream,
            semantic_decoders=_EVERY_TAG,
            max_depth=MAX_DEPTH,
            # not valid CBOR (RFC 8949 section 5.6); decoders that accept it keep one entry
            allow_duplicate_keys=False,
        ).decode()
    except cbor2.CBORDecodeEOF as e:
        raise DecodeError(f"cbor: truncated: {e}") from None
    except cbor2.CBORDecodeError as e:
        cause = f" ({e.__cause__})" if e.__cause__ else ""  # the UnicodeDecodeError, say
        raise DecodeError(f"cbor: {e}{cause}") from None
    except (ValueError, TypeError, OverflowError, RecursionError) as e:
        raise DecodeError(f"cbor: not well-formed ({e})") from None
    extra = len(data) - stream.tell()
    if extra:
        raise DecodeError(
            f"cbor: {extra} byte{'s' if extra > 1 else ''} after the first item (one expected)"
        )
    return value


# input and output


def _read_stdin():
    if sys.stdin.isatty():
        print("reading from stdin; end with Ctrl-D", file=sys.stderr)
    try:
        return sys.stdin.buffer.read().decode()
    except UnicodeDecodeError:
        raise UsageError("stdin is not UTF-8 text") from None


def _hex_digits(text):
    tokens = re.split(r"[\s:]+", text.strip())
    return "".join(t[2:] if t[:2] in ("0x", "0X") else t for t in tokens)


def _hex_bytes(text):
    digits = _hex_digits(text)
    bad = re.search("[^0-9a-fA-F]", digits)
    if bad:
        raise UsageError(
            f"HEX is not hex: {bad.group()!r} is not a hex digit "
            "(give bytes as hex digits, optionally split by spaces or colons)"
        )
    if not digits:
        raise UsageError("HEX is empty: no bytes to decode")
    if len(digits) % 2:
        raise UsageError(f"HEX has an odd number of hex digits ({len(digits)}): a byte is two")
    return bytes.fromhex(digits)


def _jsonable(value):
    # a decoded value as JSON can carry it (see "output" in DECODE_EPILOG)
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "Infinity" if value > 0 else "-Infinity"
        return value
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).hex()
    if isinstance(value, (list, tuple)):
        return [_jsonable(item) for item in value]
    if isinstance(value, Mapping):
        out = {}
        for key, item in value.items():
            text = _key_text(key)
            if text in out:  # 1 and "1", say: keep every entry
                return {"map": [[_jsonable(k), _jsonable(v)] for k, v in value.items()]}
            out[text] = _jsonable(item)
        return out
    if isinstance(value, cbor2.CBORTag):
        return {"tag": value.tag, "value": _jsonable(value.value)}
    if isinstance(value, cbor2.CBORSimpleValue):
        return {"simple": value.value}
    if value is cbor2.undefined:
        return {"simple": 23}
    return str(value)


def _key_text(key):
    if isinstance(key, str):
        return key
    value = _jsonable(key)
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))


def _print_json(value, compact):
    indent = None if compact or not sys.stdout.isatty() else 2
    utf8 = (sys.stdout.encoding or "").lower().replace("-", "") == "utf8"
    print(
        json.dumps(
            value,
            indent=indent,
            separators=(",", ": ") if indent else (",", ":"),
            ensure_ascii=not utf8,
            allow_nan=False,
        )
    )


# encode


def run_encode(args):
    text = _read_stdin()
    if not text.strip():
        raise UsageError("senml: no SenML JSON on stdin")
    try:
        pack = _json_pack(text)
        if args.json:
            print(senml.encode_json(pack).decode())
        else:
            print(senml.encode_cbor(pack).hex())
    except DecodeError as e:
        message = str(e)
        raise UsageError(message if message.startswith("senml:") else f"senml: {message}") from None
    return 0
