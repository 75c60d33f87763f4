"""The gateway writes and reads some bytes itself, for speed: each message's MQTT 5 properties,
the SenML pack of a reading, the broker's PUBACKs. They must be exactly what paho and senml write
and read for the same content, and refuse what senml refuses."""

import math

import pytest
from paho.mqtt.enums import MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from luciole.edge.intake import ReadingPacks
from luciole.edge.uplink import _PublishProperties
from luciole.protocols import senml
from luciole.protocols.errors import DecodeError


@pytest.mark.parametrize("content_type", ["application/senml+cbor", "application/senml+json"])
@pytest.mark.parametrize("seq", [0, 7, 255, 65536, 2**32 - 1])
def test_packed_properties_are_paho_bytes(content_type, seq):
    reference = Properties(PacketTypes.PUBLISH)
    reference.ContentType = content_type
    reference.UserProperty = [("seq", str(seq))]
    assert _PublishProperties(content_type, seq).pack() == reference.pack()


@pytest.mark.parametrize(
    "packet",
    [
        b"\x00\x01",  # success, the broker's usual PUBACK
        b"\xff\xff",
        b"\x00\x07\x10",  # no matching subscribers: a success too
        b"\x00\x07\x87\x00",  # not authorized, no properties
        b"\x00\x07\x80\x09\x1f\x00\x06quota!",  # unspecified error, with a reason string
    ],
)
def test_pubacks_decode_as_paho_decodes_them(packet):
    _packet = pytest.importorskip("paho.mqtt._packet")  # paho >= 2.2
    for protocol in (MQTTProtocolVersion.MQTTv5, MQTTProtocolVersion.MQTTv311):
        if protocol == MQTTProtocolVersion.MQTTv311 and len(packet) != 2:
            continue
        ours = _packet.decode_puback(0x40, packet, protocol)  # what paho calls in the gateway
        mid, reason, properties = _packet._decode_mid_reason_prop(
            PacketTypes.PUBACK, packet, protocol
        )
        assert ours.mid == mid
        assert ours.reason == reason
        assert ours.reason.is_failure == reason.is_failure
        assert ours.properties.pack() == properties.pack()


READINGS = [
    [("temperature", 21.5, "Cel")],
    [("temperature", -3, "Cel"), ("occupied", True, None), ("count", 2**63, None)],
    [("level", 0.0, "%RH"), ("", 7, None)],
    [("label", "hall", None), ("blob", b"\x00\x01", None)],  # text and bytes: senml's own path
]


@pytest.mark.parametrize("telemetry_format", ["cbor", "json"])
@pytest.mark.parametrize("values", READINGS)
def test_reading_packs_are_senml_bytes(telemetry_format, values):
    packs = ReadingPacks(telemetry_format)
    encode = senml.encode_cbor if telemetry_format == "cbor" else senml.encode_json
    for seq, base_time_s in [(0, 1767225600.125), (1, 1767225600.5), (2**32 - 1, 1767225601)]:
        records = [("seq", seq, None, None), *((n, v, u, None) for n, v, u in values)]
        reference = encode(senml.make_pack("ps-0042:", records, base_time_s))
        assert packs.encode("ps-0042", seq, values, base_time_s) == reference


def test_reading_packs_refuse_what_senml_refuses():
    packs = ReadingPacks("cbor")
    packs.encode("ps-0042", 0, [("temperature", 21.5, "Cel")], 1767225600.0)  # checked once
    for values, base_time_s in [
        ([("temperature", math.nan, "Cel")], 1767225600.0),
        ([("temperature", math.inf, "Cel")], 1767225600.0),
        ([("temperature", 2**64, "Cel")], 1767225600.0),
        ([("temperature", 21.5, "Cel")], math.nan),
        ([("temperature", 21.5, "Cel")], True),
        ([("temp erature", 21.5, "Cel")], 1767225600.0),  # not a SenML name
    ]:
        for _ in range(2):  # refused every time: nothing bad is remembered as checked
            with pytest.raises(DecodeError):
                packs.encode("ps-0042", 1, values, base_time_s)
