# The body of READING and EVENT frames on the device link: one reading, CBOR-encoded.
#
#   {"id": device id, "seq": device sequence number, "r": [[name, value, unit], ...], "t": time_s}
#
# "seq" counts the device's readings (0..2**32-1) so the city can drop duplicates; "t" (seconds
# since the epoch) is optional: a device that does not know the time leaves it out and the gateway
# stamps the reading on arrival. Values are numbers, booleans, text or bytes; unit may be None.
from . import cbor
from .errors import DecodeError
from .topics import is_valid_id

_VALUE_TYPES = (int, float, bool, str, bytes)


def encode(device_id, seq, readings, time_s=None):
    body = {"id": device_id, "seq": seq, "r": [list(r) for r in readings]}
    if time_s is not None:
        body["t"] = time_s
    return cbor.dumps(body)


def decode(body):
    # (device_id, seq, [(name, value, unit)], time_s or None)
    data = cbor.loads(body)
    if not isinstance(data, dict):
        raise DecodeError("reading: not a map")
    device_id = data.get("id")
    seq = data.get("seq")
    records = data.get("r")
    time_s = data.get("t")
    if not is_valid_id(device_id):
        raise DecodeError("reading: bad device id %r" % (device_id,))
    if not isinstance(seq, int) or isinstance(seq, bool) or not 0 <= seq < 0x100000000:
        raise DecodeError("reading: seq must be an integer from 0 to 2**32-1")
    if time_s is not None and (not isinstance(time_s, (int, float)) or isinstance(time_s, bool)):
        raise DecodeError("reading: t must be a number")
    if not isinstance(records, list) or not records:
        raise DecodeError("reading: r must be a non-empty list")
    readings = []
    for record in records:
        if not isinstance(record, list) or len(record) != 3:
            raise DecodeError("reading: each record is [name, value, unit]")
        name, value, unit = record
        if not isinstance(name, str) or not name or not isinstance(value, _VALUE_TYPES):
            raise DecodeError("reading: bad record %r" % (record,))
        if unit is not None and not isinstance(unit, str):
            raise DecodeError("reading: unit must be text")
        readings.append((name, value, unit))
    return device_id, seq, readings, time_s
