# The workloads of `luciole bench protocols`, defined once for both interpreters.
#
# CPython imports this module (luciole.simulators.bench.protocols_mp) and times the workloads with
# simulators.bench.per_call_s. MicroPython runs it as a script (simulators.micropython.run, the
# repository's protocols/ imported as `protocols`, as on a board) with the ops to time as
# arguments; it times them the same way and prints one JSON line:
#   {"us": {op: microseconds per call}, "heap_bytes": GC heap in use after the runs}
#
# Each workload imports only the modules it needs, when it is set up: compiled from source all
# together the protocol modules do not fit a 64 KB heap, so the bench runs one op per MicroPython
# process, as a board runs one app with the modules it needs.
import gc
import sys
import time
from binascii import unhexlify

try:
    import luciole.protocols  # noqa: F401  (CPython: the installed distribution)

    _PACKAGE = "luciole.protocols."
except ImportError:
    _PACKAGE = "protocols."  # MicroPython: the protocols/ folder, as on a board
    if __name__ == "__main__":
        # MicroPython puts the script's folder first on sys.path, where protocols.py (the
        # CPython side of this bench) would shadow the protocols package
        del sys.path[0]


def _module(name):
    __import__(_PACKAGE + name)
    return sys.modules[_PACKAGE + name]


# The BTHome specification's example key and MAC (bthome.io/encryption)
KEY = unhexlify("231d39c1d7cc1ab1aee224cd096db932")
MAC = "54:48:E6:8F:80:A5"
COUNTER = 1122867
# What a parking sensor sends: packet id, battery %, voltage, occupancy
BTHOME_MEASUREMENTS = [(0x01, 97), (0x0C, 3.012), (0x23, True)]
LINK_BODY = bytes(range(64))


def make_pack(senml):
    # 10 records, as a parking sensor's telemetry: a bool, numbers with units and relative
    # times under a base name and base time, a text value
    return senml.make_pack(
        "urn:dev:luciole:bay-12:",
        [
            ("occupied", True, None, 0),
            ("field-x", 41.25, "uT", -1),
            ("field-y", -12.5, "uT", -1),
            ("field-z", 3.75, "uT", -1),
            ("temperature", 21.5, "Cel", -1),
            ("humidity", 54.5, "%RH", -1),
            ("battery", 97, "%EL", -5),
            ("voltage", 3.012, "V", -5),
            ("uptime", 86400, "s", -5),
            ("firmware", "1.4.2", None, None),
        ],
        base_time_s=1700000000,
    )


# Each setup returns the function to time.


def _link_frame():
    link = _module("link")
    return lambda: link.decode_frame(link.encode_frame(link.READING, 7, LINK_BODY, True))


def _senml_encode_cbor():
    senml = _module("senml")
    pack = make_pack(senml)
    return lambda: senml.encode_cbor(pack)


def _senml_encode_json():
    senml = _module("senml")
    pack = make_pack(senml)
    return lambda: senml.encode_json(pack)


def _senml_decode_cbor():
    senml = _module("senml")
    data = senml.encode_cbor(make_pack(senml))
    return lambda: senml.decode_cbor(data)


def _bthome_decode():
    bthome = _module("ble.bthome")
    frame = bthome.encode(BTHOME_MEASUREMENTS, MAC, KEY, counter=COUNTER, packet_id=9)
    return lambda: bthome.decode(frame, MAC, KEY)


def _bthome_encode():
    bthome = _module("ble.bthome")
    return lambda: bthome.encode(BTHOME_MEASUREMENTS, MAC, KEY, counter=COUNTER, packet_id=9)


def _pack_value():
    # the pack as the generic CBOR value it is (integer labels), for the codecs' comparison
    senml = _module("senml")
    return _module("cbor").loads(senml.encode_cbor(make_pack(senml)))


def _cbor_compact():
    codec = _module("cbor_compact")
    value = _pack_value()
    return lambda: codec.loads(codec.dumps(value))


def _cbor_cbor2():
    # protocols.cbor is cbor2 on CPython; this one only runs there
    codec = _module("cbor")
    value = _pack_value()
    return lambda: codec.loads(codec.dumps(value))


# (key, what, setup, runs on MicroPython too), in the order of the table
WORKLOADS = (
    ("link_frame", "device-link frame encode+decode, 64-byte body", _link_frame, True),
    ("senml_encode_cbor", "SenML encode, 10 records, CBOR", _senml_encode_cbor, True),
    ("senml_encode_json", "SenML encode, 10 records, JSON", _senml_encode_json, True),
    ("senml_decode_cbor", "SenML decode, 10 records, CBOR", _senml_decode_cbor, True),
    ("bthome_decode", "BTHome decode, encrypted (gateway side)", _bthome_decode, True),
    ("bthome_encode", "BTHome encode, encrypted (sensor side)", _bthome_encode, True),
    ("cbor_compact", "CBOR encode+decode of the pack, compact codec", _cbor_compact, True),
    ("cbor_cbor2", "CBOR encode+decode of the pack, cbor2", _cbor_cbor2, False),
)


def per_call_us(fn, min_time_us=200000, rounds=3):
    # simulators.bench.per_call_s on MicroPython's microsecond ticks: calls in a loop long enough
    # to swamp the clock's resolution, best of `rounds` runs
    calls = 1
    while True:
        start = time.ticks_us()
        for _ in range(calls):
            fn()
        elapsed = time.ticks_diff(time.ticks_us(), start)
        if elapsed >= min_time_us // 4:
            break
        calls *= 4
    best = elapsed / calls
    for _ in range(rounds - 1):
        start = time.ticks_us()
        for _ in range(calls):
            fn()
        best = min(best, time.ticks_diff(time.ticks_us(), start) / calls)
    return best


def main(names):
    import json

    us = {}
    for key, _, setup, _ in WORKLOADS:
        if key in names:
            fn = setup()
            fn()  # once outside the clock: a failing op raises here
            gc.collect()
            us[key] = per_call_us(fn)
    gc.collect()
    print(json.dumps({"us": us, "heap_bytes": gc.mem_alloc()}))


if __name__ == "__main__":
    main(sys.argv[1:])
