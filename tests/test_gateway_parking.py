"""Parking end to end with real parts: an inventory imported with the real `luciole parking
import`, the real gateway process scanning BTHome adverts through the BlueZ stand-in on a private
D-Bus, a real Mosquitto; what a city integrator finds retained on parking/spots and parking/sites,
and the operator's close/open commands."""

import asyncio
import contextlib
import json
import subprocess
import uuid

import aiomqtt
from contract import payload_errors, topic_matches_contract
from harness import LUCIOLE, GatewayProcess, Subscriber, gateway_config, scrape, wait_until
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from luciole.protocols.ble import bthome
from luciole.simulators.bluez import BTHOME
from luciole.simulators.mosquitto import free_port

PREFIX = "luciole/v1/issy"
KEY = bytes.fromhex("231d39c1d7cc1ab1aee224cd096db932")
WRONG_KEY = bytes(16)
OCCUPANCY, BATTERY = 0x23, 0x01
UNKNOWN_AFTER_S = 8  # longer than an advert takes to be checked, on a loaded machine
# (device, MAC, bay)
SENSORS = [
    ("ps-0001", "54:48:E6:8F:80:A5", "b1"),
    ("ps-0002", "54:48:E6:8F:80:A6", "b2"),
    ("ps-0003", "54:48:E6:8F:80:A7", "b3"),  # sends under another key than the gateway's
]
BAYS = """id,name,street,lat,lon
b1,1,Rue Ernest Renan,48.8245,2.2707
b2,2,Rue Ernest Renan,48.8246,2.2708
b3,3,Rue Ernest Renan,48.8247,2.2709
b4,4,Avenue Victor Cresson,48.8250,2.2650
"""


@contextlib.contextmanager
def parking_gateway(tmp_path, broker):
    port = free_port()
    lines = ["[ble]", "[parking]", f"unknown_after_s = {UNKNOWN_AFTER_S}"]
    for device_id, mac, bay in SENSORS:
        lines += ["[[devices]]", f'id = "{device_id}"', 'kind = "parking-sensor"']
        lines += [f'mac = "{mac}"', f'key = "{KEY.hex()}"', f'spot = "{bay}"']
    config = gateway_config(
        tmp_path, broker, extra="\n".join(lines) + "\n", http_listen=f"127.0.0.1:{port}"
    )
    bays = tmp_path / "bays.csv"
    bays.write_text(BAYS)
    done = subprocess.run(
        [LUCIOLE, "parking", "import", str(bays), "--config", str(config)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert "imported 4 bays in 2 sites" in done.stdout
    gw = GatewayProcess(config, tmp_path / "gw.log").start()
    try:
        yield gw, port
    finally:
        gw.stop()


def frame(mac, packet_id, occupied, counter, key=KEY):
    objects = [(BATTERY, 80), (OCCUPANCY, occupied)]
    return {BTHOME: bthome.encode(objects, mac, key, counter=counter, packet_id=packet_id)}


def state(city):
    """topic -> the last retained payload, as a consumer's view of the broker."""
    latest = {}
    for m in city.messages:
        latest[m.topic] = json.loads(m.payload) if m.payload else None
    return latest


def status(city, bay):
    entity = state(city).get(f"{PREFIX}/parking/spots/{bay}")
    return entity and entity["status"]


def counts(city, site):
    entity = state(city).get(f"{PREFIX}/parking/sites/{site}")
    if entity is None:
        return None
    return (
        entity["totalSpotNumber"],
        entity["availableSpotNumber"],
        entity["occupiedSpotNumber"],
    )


async def ask(broker, command, args):
    async with aiomqtt.Client(
        broker.host, broker.port, protocol=aiomqtt.ProtocolVersion.V5
    ) as client:
        inbox = f"ops/replies/{uuid.uuid4().hex}"
        await client.subscribe(inbox, qos=1)
        props = Properties(PacketTypes.PUBLISH)
        props.ResponseTopic, props.CorrelationData = inbox, b"1"
        payload = json.dumps({"args": args}).encode()
        await client.publish(f"{PREFIX}/cmd/gw-test/{command}", payload, qos=1, properties=props)
        async with asyncio.timeout(10):
            async for message in client.messages:
                return json.loads(message.payload)


async def test_bays_follow_their_sensors_and_the_operator(tmp_path, broker, bluez):
    (_, mac1, _), (_, mac2, _), (id3, mac3, _) = SENSORS
    with parking_gateway(tmp_path, broker) as (gw, port):
        async with Subscriber(broker, f"{PREFIX}/parking/#").running() as city:
            await wait_until(
                lambda: counts(city, "avenue-victor-cresson") and status(city, "b4"),
                20,
                "every bay and site published at start",
            )
            assert {status(city, b) for b in ("b1", "b2", "b3", "b4")} == {"unknown"}
            assert counts(city, "rue-ernest-renan") == (3, 0, 0)
            await wait_until(lambda: (gw.process.poll() is None) and bluez.scanning(), 20, "scan")

            assert bluez.advertise(mac1, service_data=frame(mac1, 1, True, 10))
            assert bluez.advertise(mac2, service_data=frame(mac2, 1, False, 10))
            forged = frame(mac3, 1, True, 10, key=WRONG_KEY)
            assert bluez.advertise(mac3, service_data=forged)
            await wait_until(
                lambda: counts(city, "rue-ernest-renan") == (3, 1, 1), 10, "the sensors' states"
            )
            assert status(city, "b1") == "occupied"
            assert status(city, "b2") == "free"
            assert status(city, "b3") == "unknown"  # the forged advert changed nothing
            values = await scrape(port)
            assert values['luciole_ble_adverts_total{outcome="rejected"}'] >= 1
            assert f"{id3} ({mac3}): advert rejected, not trusted" in gw.log()

            answer = await ask(broker, "parking-close", {"spot": "b2", "reason": "market day"})
            assert answer["ok"] and answer["result"]["status"] == "closed", answer
            await wait_until(lambda: status(city, "b2") == "closed", 10, "b2 closed")
            spot = state(city)[f"{PREFIX}/parking/spots/b2"]
            assert spot["description"] == "closed: market day"
            await wait_until(
                lambda: counts(city, "rue-ernest-renan") == (3, 0, 1), 10, "b2 not counted"
            )
            answer = await ask(broker, "parking-close", {"spot": "b9"})
            assert answer == {
                "ok": False,
                "error": "no bay 'b9' in this gateway's parking inventory",
            }
            answer = await ask(broker, "parking-open", {"spot": "b2"})
            assert answer["ok"] and answer["result"]["status"] in ("free", "unknown"), answer

            # silence: past unknown_after_s every bay is unknown again
            await wait_until(
                lambda: {status(city, b) for b in ("b1", "b2", "b3")} == {"unknown"},
                UNKNOWN_AFTER_S + 10,
                "silent sensors' bays unknown",
            )
            await wait_until(
                lambda: counts(city, "rue-ernest-renan") == (3, 0, 0), 10, "nothing counted"
            )

        for message in city.messages:
            assert topic_matches_contract(message.topic, action="send"), message.topic
            assert message.retained or message.payload
            assert payload_errors(message.topic, json.loads(message.payload)) == [], message

        # a consumer arriving later finds every bay and site retained
        async with Subscriber(broker, f"{PREFIX}/parking/#", "late").running() as late:
            await wait_until(lambda: len(state(late)) == 6, 10, "the retained states")
            assert all(m.retained for m in late.messages)


async def test_a_closed_bay_stays_closed_across_a_restart(tmp_path, broker, bluez):
    with parking_gateway(tmp_path, broker) as (gw, _):
        async with Subscriber(broker, f"{PREFIX}/parking/spots/b4").running() as city:
            await wait_until(lambda: status(city, "b4"), 20, "b4 published")
            answer = await ask(broker, "parking-close", {"spot": "b4"})
            assert answer["ok"], answer
            await wait_until(lambda: status(city, "b4") == "closed", 10, "b4 closed")
        gw.stop()
        closed_at = state(city)[f"{PREFIX}/parking/spots/b4"]["dateModified"]
        # the retained message is cleared so that only the restarted gateway can bring it back
        async with aiomqtt.Client(broker.host, broker.port) as client:
            await client.publish(f"{PREFIX}/parking/spots/b4", b"", qos=1, retain=True)
        gw.start()
        async with Subscriber(broker, f"{PREFIX}/parking/spots/b4", "again").running() as again:
            await wait_until(lambda: status(again, "b4"), 20, "b4 published again")
            entity = state(again)[f"{PREFIX}/parking/spots/b4"]
            assert entity["status"] == "closed"
            assert entity["dateModified"] == closed_at
