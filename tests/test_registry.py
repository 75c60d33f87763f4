"""The gateway's device registry across restarts: what it remembers in its SQLite file."""

import sqlite3

from luciole.edge.config import DeviceConfig
from luciole.edge.registry import Registry

KEY = bytes.fromhex("231d39c1d7cc1ab1aee224cd096db932")
SENSOR = DeviceConfig(id="ps-0001", kind="parking-sensor", mac="54:48:E6:8F:80:A5", key=KEY)


def test_a_restarted_gateway_remembers_its_devices_as_offline(tmp_path):
    path = tmp_path / "registry.db"
    registry = Registry(path, (SENSOR,))
    luminaire = registry.announce("lum-1", "luminaire", "/dev/ttyUSB0", "0.1.0")
    registry.heard(luminaire, "/dev/ttyUSB0")
    registry.heard(registry.devices["ps-0001"], "ble", battery=87)
    registry.devices["ps-0001"].bthome_counter = 41
    registry.close()

    again = Registry(path, (SENSOR,))
    lum, sensor = again.devices["lum-1"], again.devices["ps-0001"]
    assert (lum.kind, lum.link, lum.firmware) == ("luminaire", "/dev/ttyUSB0", "0.1.0")
    assert lum.last_seen == luminaire.last_seen
    # heard again before it counts as online; its commands wait for its next HELLO
    assert (lum.online, lum.console) == (False, "")
    assert (sensor.link, sensor.bthome_counter, sensor.key) == ("ble", 41, KEY)


def test_a_sensor_given_a_new_key_starts_a_new_count(tmp_path):
    path = tmp_path / "registry.db"
    registry = Registry(path, (SENSOR,))
    registry.devices["ps-0001"].bthome_counter = 41
    registry.close()
    rekeyed = DeviceConfig(id="ps-0001", kind="parking-sensor", mac=SENSOR.mac, key=bytes(16))
    again = Registry(path, (rekeyed,))
    assert again.devices["ps-0001"].bthome_counter is None
    assert again.devices["ps-0001"].key == bytes(16)


def test_a_registry_written_before_the_counter_column_still_opens(tmp_path):
    path = tmp_path / "registry.db"
    with sqlite3.connect(path) as db:
        db.execute(
            "CREATE TABLE devices (id TEXT PRIMARY KEY, kind TEXT NOT NULL, mac TEXT, key BLOB, "
            "link TEXT, last_seen REAL, firmware TEXT)"
        )
        db.execute(
            "INSERT INTO devices VALUES ('ps-0001', 'parking-sensor', ?, ?, 'ble', 1.5, NULL)",
            (SENSOR.mac, KEY),
        )
    registry = Registry(path, (SENSOR,))
    sensor = registry.devices["ps-0001"]
    assert (sensor.last_seen, sensor.bthome_counter) == (1.5, None)
    sensor.bthome_counter = 7
    registry.close()
    assert Registry(path, (SENSOR,)).devices["ps-0001"].bthome_counter == 7
