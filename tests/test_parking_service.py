"""The parking service: bay states from sensor readings, timeouts, closures, site counts, and
what survives a restart; published entities checked against the city contract."""

import asyncio
import json

import pytest
from contract import payload_errors

from luciole.edge import parking_inventory
from luciole.edge.parking import OCCUPANCY, ParkingService, iso
from luciole.protocols.topics import Topics

TOPICS = Topics("issy")
SPOT = "luciole/v1/issy/parking/spots/"
SITE = "luciole/v1/issy/parking/sites/"
UNKNOWN_AFTER_S = 60.0
CSV = """id,name,street,lat,lon
b1,Bay 1,Rue Ernest Renan,48.8245,2.2707
b2,Bay 2,Rue Ernest Renan,48.8246,2.2708
b3,Bay 3,Avenue Victor Cresson,48.8250,2.2650
"""


class Clock:
    def __init__(self):
        self.now = 1_767_225_600.0  # 2026-01-01T00:00:00Z

    def __call__(self):
        return self.now


@pytest.fixture
def db_path(tmp_path):
    source = tmp_path / "bays.csv"
    source.write_text(CSV)
    path = tmp_path / "parking.db"
    parking_inventory.save(path, parking_inventory.read(source))
    return path


class City:
    """The retained messages, as the broker would keep them."""

    def __init__(self):
        self.retained, self.log = {}, []

    async def publish(self, topic, payload):
        self.log.append(topic)
        if payload:
            self.retained[topic] = json.loads(payload)
        else:
            self.retained.pop(topic, None)

    def spot(self, spot_id):
        return self.retained[SPOT + spot_id]

    def site(self, site_id):
        return self.retained[SITE + site_id]


def occupancy(value):
    return [{"id": 0x01, "value": 90}, {"id": OCCUPANCY, "value": value}]


@pytest.fixture
def clock():
    return Clock()


def service(db_path, city, clock, sensors=None):
    sensors = {"ps-1": "b1", "ps-2": "b2"} if sensors is None else sensors
    return ParkingService(db_path, "issy", TOPICS, sensors, UNKNOWN_AFTER_S, city.publish, clock)


async def settle(parking):
    """One round of the service: what changed is saved and published."""
    await parking._flush()


async def test_every_bay_and_site_is_published_once_at_start_as_unknown(db_path, clock):
    city = City()
    parking = service(db_path, city, clock)
    await settle(parking)
    spots = [SPOT + "b1", SPOT + "b2", SPOT + "b3"]
    assert sorted(city.log) == sorted(
        [*spots, SITE + "rue-ernest-renan", SITE + "avenue-victor-cresson"]
    )
    b1 = city.spot("b1")
    assert b1 == {
        "id": "urn:ngsi-ld:ParkingSpot:issy:b1",
        "type": "ParkingSpot",
        "name": "Bay 1",
        "status": "unknown",
        "category": ["onStreet"],
        "refParkingSite": "urn:ngsi-ld:OnStreetParking:issy:rue-ernest-renan",
        "location": {"type": "Point", "coordinates": [2.2707, 48.8245]},
        "dateModified": "2026-01-01T00:00:00.000Z",
        "refDevice": ["urn:ngsi-ld:Device:issy:ps-1"],
    }
    assert "refDevice" not in city.spot("b3")
    site = city.site("rue-ernest-renan")
    assert site["name"] == "Rue Ernest Renan"
    assert (site["totalSpotNumber"], site["availableSpotNumber"], site["occupiedSpotNumber"]) == (
        2,
        0,
        0,
    )
    for topic, entity in city.retained.items():
        assert payload_errors(topic, entity) == [], topic
    city.log.clear()
    await settle(parking)
    assert city.log == []  # nothing changed, nothing published
    parking.close_db()


async def test_readings_make_bays_free_or_occupied_and_sites_count_them(db_path, clock):
    city = City()
    parking = service(db_path, city, clock)
    await settle(parking)
    city.log.clear()
    clock.now += 5
    parking.reading("ps-1", occupancy(True))
    parking.reading("ps-2", occupancy(False))
    parking.reading("ps-9", occupancy(True))  # a sensor assigned to no bay: ignored
    await settle(parking)
    assert city.spot("b1")["status"] == "occupied"
    assert city.spot("b2")["status"] == "free"
    assert city.spot("b1")["dateModified"] == iso(clock.now)
    site = city.site("rue-ernest-renan")
    assert (site["availableSpotNumber"], site["occupiedSpotNumber"]) == (1, 1)
    assert site["occupancyModified"] == "2026-01-01T00:00:05.000Z"
    assert sorted(city.log) == [SITE + "rue-ernest-renan", SPOT + "b1", SPOT + "b2"]

    city.log.clear()
    clock.now += 5
    parking.reading("ps-1", occupancy(True))  # the same state again: nothing to publish
    parking.reading("ps-2", [{"id": 0x01, "value": 89}])  # no occupancy: a sign of life only
    await settle(parking)
    assert city.log == []
    assert city.spot("b1")["dateModified"] == "2026-01-01T00:00:05.000Z"
    for topic, entity in city.retained.items():
        assert payload_errors(topic, entity) == [], topic
    parking.close_db()


async def test_a_silent_sensor_makes_its_bay_unknown(db_path, clock):
    city = City()
    parking = service(db_path, city, clock)
    parking.reading("ps-1", occupancy(True))
    parking.reading("ps-2", occupancy(False))
    await settle(parking)
    clock.now += UNKNOWN_AFTER_S - 1
    parking.reading("ps-2", [{"id": 0x01, "value": 89}])  # ps-2 lives on, ps-1 is silent
    for spot_id in parking.spots:
        parking._update(spot_id, clock.now)
    await settle(parking)
    assert city.spot("b1")["status"] == "occupied"
    clock.now += 2
    for spot_id in parking.spots:
        parking._update(spot_id, clock.now)
    await settle(parking)
    assert city.spot("b1")["status"] == "unknown"
    assert city.spot("b1")["dateModified"] == iso(clock.now)
    assert city.spot("b2")["status"] == "free"
    site = city.site("rue-ernest-renan")
    assert (site["availableSpotNumber"], site["occupiedSpotNumber"]) == (1, 0)
    parking.reading("ps-1", occupancy(False))  # back
    await settle(parking)
    assert city.spot("b1")["status"] == "free"
    parking.close_db()


async def test_the_running_service_expires_silent_sensors(db_path, clock, monkeypatch):
    monkeypatch.setattr("luciole.edge.parking.TICK_S", 0.01)
    city = City()
    parking = service(db_path, city, clock)
    parking.reading("ps-1", occupancy(True))
    task = asyncio.create_task(parking.run())
    try:
        while city.retained.get(SPOT + "b1", {}).get("status") != "occupied":
            await asyncio.sleep(0.01)
        clock.now += UNKNOWN_AFTER_S + 1
        while city.spot("b1")["status"] != "unknown":
            await asyncio.sleep(0.01)
    finally:
        task.cancel()
        parking.close_db()


async def test_closed_whatever_the_sensor_says_until_opened(db_path, clock):
    city = City()
    parking = service(db_path, city, clock)
    parking.reading("ps-1", occupancy(False))
    await settle(parking)
    result = parking.close("b1", "roadworks")
    assert result["status"] == "closed" and result["reason"] == "roadworks"
    await settle(parking)
    assert city.spot("b1")["status"] == "closed"
    assert city.spot("b1")["description"] == "closed: roadworks"
    site = city.site("rue-ernest-renan")
    assert (site["totalSpotNumber"], site["availableSpotNumber"]) == (2, 0)
    parking.reading("ps-1", occupancy(True))
    await settle(parking)
    assert city.spot("b1")["status"] == "closed"
    assert parking.open("b1")["status"] == "occupied"  # what the sensor said meanwhile
    await settle(parking)
    assert city.spot("b1")["status"] == "occupied"
    assert "description" not in city.spot("b1")
    with pytest.raises(ValueError, match="no bay 'b7'"):
        parking.close("b7")
    parking.close_db()


async def test_state_survives_a_restart(db_path, clock):
    city = City()
    parking = service(db_path, city, clock)
    parking.reading("ps-1", occupancy(True))
    parking.reading("ps-2", occupancy(False))
    parking.close("b3", "market day")
    await settle(parking)
    before = dict(city.retained)
    parking.close_db()

    clock.now += 10  # a quick restart: the same states, the same payloads
    again = City()
    parking = service(db_path, again, clock)
    await settle(parking)
    assert again.retained == before
    parking.close_db()

    clock.now += UNKNOWN_AFTER_S  # down for longer than the timeout: the sensors went stale
    later = City()
    parking = service(db_path, later, clock)
    await settle(parking)
    assert later.spot("b1")["status"] == "unknown"
    assert later.spot("b3")["status"] == "closed"
    assert later.site("rue-ernest-renan")["occupiedSpotNumber"] == 0
    parking.close_db()


async def test_a_sensor_moved_to_another_bay_says_nothing_of_the_old_one(db_path, clock):
    city = City()
    parking = service(db_path, city, clock)
    parking.reading("ps-1", occupancy(True))
    await settle(parking)
    parking.close_db()
    city = City()
    parking = service(db_path, city, clock, sensors={"ps-1": "b3"})
    await settle(parking)
    assert city.spot("b1")["status"] == "unknown"
    assert city.spot("b3")["status"] == "unknown"
    assert city.spot("b3")["refDevice"] == ["urn:ngsi-ld:Device:issy:ps-1"]
    parking.close_db()


async def test_a_new_import_is_picked_up_and_removed_bays_cleared(db_path, clock, tmp_path):
    city = City()
    parking = service(db_path, city, clock)
    parking.reading("ps-1", occupancy(True))
    await settle(parking)
    source = tmp_path / "new.csv"
    source.write_text(CSV.replace("b3,Bay 3,Avenue Victor Cresson", "b4,Bay 4,Rue Renan"))
    parking_inventory.save(db_path, parking_inventory.read(source))
    parking._reload_if_imported()
    await settle(parking)
    assert SPOT + "b3" not in city.retained
    assert SITE + "avenue-victor-cresson" not in city.retained
    assert city.spot("b4")["status"] == "unknown"
    assert city.spot("b1")["status"] == "occupied"  # what was learnt about b1 stays
    parking.close_db()
