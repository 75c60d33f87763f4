"""The uplink packs each message's MQTT 5 properties itself, for speed: the bytes must be
exactly what paho writes for the same properties."""

import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from luciole.edge.uplink import _PublishProperties


@pytest.mark.parametrize("content_type", ["application/senml+cbor", "application/senml+json"])
@pytest.mark.parametrize("seq", [0, 7, 255, 65536, 2**32 - 1])
def test_packed_properties_are_paho_bytes(content_type, seq):
    reference = Properties(PacketTypes.PUBLISH)
    reference.ContentType = content_type
    reference.UserProperty = [("seq", str(seq))]
    assert _PublishProperties(content_type, seq).pack() == reference.pack()
