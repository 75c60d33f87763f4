"""docs/asyncapi.json, the city contract: well formed, in step with protocols/topics.py and
DESIGN.md section 4, and true of what the real gateway publishes."""

import asyncio
import json
import re

import pytest
from contract import (
    contract,
    matching_channels,
    operations,
    payload_errors,
    resolve,
    topic_matches_contract,
    validate,
)
from harness import GatewayProcess, Subscriber, gateway_config, wait_until

from luciole.protocols import readings, senml
from luciole.protocols.link import EVENT, encode_frame
from luciole.protocols.topics import DEFAULT_PREFIX, PATTERNS, Topics
from luciole.simulators.serial_device import SerialDevice

ID_PATTERN = "^[a-z0-9][a-z0-9-]{0,63}$"

# DESIGN.md section 4, per topic: direction from the gateway's point of view, and retained
DESIGN = {
    "gateway_status": ("send", True),
    "device_status": ("send", True),
    "telemetry": ("send", False),
    "events": ("send", False),
    "parking_spot": ("send", True),
    "parking_site": ("send", True),
    "exhibit_content": ("receive", True),
    "exhibit_object": ("receive", True),
    "exhibit_broadcast": ("send", True),
    "beacon": ("send", True),
    "zone_presence": ("send", False),
    "command": ("receive", False),
}


def channel_of(name):
    """The one channel whose address is the topic pattern `name`, parameters as wildcards."""
    wildcard = f"{DEFAULT_PREFIX}/+/{PATTERNS[name]}"
    found = [
        channel
        for channel, c in contract()["channels"].items()
        if c["address"] is not None and re.sub(r"\{[^{}]+\}", "+", c["address"]) == wildcard
    ]
    assert len(found) == 1, f"{name}: channels {found} have the address {wildcard}"
    return found[0]


def references(node):
    if isinstance(node, dict):
        if "$ref" in node:
            yield node["$ref"]
        for value in node.values():
            yield from references(value)
    elif isinstance(node, list):
        for value in node:
            yield from references(value)


def test_the_document_is_asyncapi_3():
    doc = contract()
    assert doc["asyncapi"] == "3.0.0"
    assert doc["info"]["title"] and doc["info"]["version"]
    assert {s["protocol"] for s in doc["servers"].values()} == {"mqtt"}
    assert {s["protocolVersion"] for s in doc["servers"].values()} == {"5", "3.1.1"}
    for ref in references(doc):
        assert ref.startswith("#/"), ref
        assert resolve({"$ref": ref}) is not None, ref


def test_the_topic_schema_and_the_design_name_the_same_topics():
    assert set(PATTERNS) == set(DESIGN)


@pytest.mark.parametrize("name", sorted(PATTERNS))
def test_each_topic_has_exactly_one_channel(name):
    channel = channel_of(name)
    topic = Topics("issy").build(name, *["x-1"] * PATTERNS[name].count("+"))
    assert matching_channels(topic) == [channel]
    assert topic_matches_contract(topic)


def test_every_channel_is_a_topic_of_the_schema():
    named = {channel_of(name) for name in PATTERNS}
    addressed = {name for name, c in contract()["channels"].items() if c["address"] is not None}
    assert addressed == named


@pytest.mark.parametrize("name", sorted(contract()["channels"]))
def test_parameters_are_the_address_ones_and_match_ids(name):
    channel = contract()["channels"][name]
    in_address = set(re.findall(r"\{([^{}]+)\}", channel["address"] or ""))
    assert set(channel.get("parameters", {})) == in_address
    for parameter in channel.get("parameters", {}).values():
        assert resolve(parameter)["x-pattern"] == ID_PATTERN


@pytest.mark.parametrize("name", sorted(PATTERNS))
def test_direction_qos_and_retain_follow_the_design(name):
    action, retain = DESIGN[name]
    (operation,) = operations(channel_of(name))
    assert operation["action"] == action
    assert operation["bindings"]["mqtt"]["qos"] == 1
    assert operation["bindings"]["mqtt"]["retain"] is retain
    channel_messages = contract()["channels"][channel_of(name)]["messages"]
    for message in operation["messages"]:
        assert message["$ref"].rsplit("/", 1)[1] in channel_messages


def test_commands_are_answered_on_the_requesters_response_topic():
    (operation,) = operations(channel_of("command"))
    reply = operation["reply"]
    assert resolve(reply["channel"])["address"] is None
    assert reply["address"]["location"].startswith("$message.header#/")


@pytest.mark.parametrize("name", ["telemetry", "events"])
def test_readings_carry_seq_in_the_payload_and_as_a_user_property(name):
    messages = contract()["channels"][channel_of(name)]["messages"].values()
    types = set()
    for message in map(resolve, messages):
        types.add(message["contentType"])
        assert message["bindings"]["mqtt"]["contentType"] == message["contentType"]
        assert "seq" in resolve(message["headers"])["required"]
        pack = senml.make_pack("ps-1:", [("seq", 7, None, None), ("x", 1.5, "Cel", None)], 1.7e9)
        assert validate(pack, message["payload"]) == []
        assert validate(pack[1:], message["payload"]) != []  # no seq record first
    assert types == {senml.CONTENT_TYPE_CBOR, senml.CONTENT_TYPE_JSON}


def test_every_example_fits_its_schema():
    for name, message in contract()["components"]["messages"].items():
        assert message.get("examples"), name
        for example in message["examples"]:
            assert validate(example["payload"], message["payload"]) == [], (name, example)
            if "headers" in message:
                assert validate(example["headers"], message["headers"]) == [], (name, example)


@pytest.mark.parametrize(
    "topic",
    [
        "luciole/v1/issy/devices/PS-1/telemetry",  # upper case: not an id
        "luciole/v1/issy/devices/-ps/telemetry",
        "luciole/v1/issy/devices/" + "x" * 65 + "/telemetry",
        "luciole/v1/issy/devices/ps-1/telemetry/more",
        "luciole/v1/issy/devices/ps-1",
        "luciole/v2/issy/devices/ps-1/telemetry",
        "luciole/v1/issy/devices/+/telemetry",
        "luciole/v1/issy/cmd/ps-1",
    ],
)
def test_topics_outside_the_contract_do_not_match(topic):
    assert not topic_matches_contract(topic)


def test_a_configured_prefix_and_directions():
    assert topic_matches_contract("city/luciole/issy/gateways/gw-1/status", prefix="city/luciole")
    assert not topic_matches_contract("luciole/v1/issy/gateways/gw-1/status", prefix="city/x")
    assert topic_matches_contract("luciole/v1/issy/devices/ps-1/telemetry", action="send")
    assert not topic_matches_contract("luciole/v1/issy/devices/ps-1/telemetry", action="receive")
    assert topic_matches_contract("luciole/v1/issy/cmd/gw-1/ping", action="receive")


# -- the real gateway ----------------------------------------------------------------------------


def decoded(message):
    if message.topic.endswith(("/telemetry", "/events")):
        return senml.decode_cbor(message.payload)
    return json.loads(message.payload)


async def test_every_topic_the_gateway_publishes_is_in_the_contract(tmp_path, broker):
    device = SerialDevice("lum-0001", tmp_path / "ttyLUC0")
    gw = GatewayProcess(gateway_config(tmp_path, broker, [device.path]), tmp_path / "gw.log")
    gw.start()
    try:
        async with Subscriber(broker, "luciole/v1/#").running() as city:

            def on(suffix):
                return [m for m in city.messages if m.topic.endswith(suffix)]

            await asyncio.wait_for(device.send_readings(20), 30)
            event = readings.encode("lum-0001", 20, [("reboot", True, None)])
            device.inject(encode_frame(EVENT, 60000, event))  # an event, unacknowledged
            await wait_until(
                lambda: (
                    len(on("/telemetry")) >= 20
                    and on("/events")
                    and on("/devices/lum-0001/status")
                    and on("/gateways/gw-test/status")
                ),
                15,
                "telemetry, an event, the device's and the gateway's status",
            )
    finally:
        gw.stop()
        device.unplug()

    for message in city.messages:
        assert topic_matches_contract(message.topic, action="send"), message.topic
        assert payload_errors(message.topic, decoded(message)) == [], message
        if message.topic.endswith(("/telemetry", "/events")):
            assert not message.retained
            assert message.user_seq == str(message.seq)
    assert {m.seq for m in on("/telemetry")} == set(range(20))
    assert [m.seq for m in on("/events")] == [20]
