"""Known devices: who they are, their keys, where and when they were last heard.

Kept in SQLite beside the outbox so a restarted gateway remembers them. Devices come from the
config (BLE sensors with their keys) or announce themselves on a serial link with HELLO (a device
wired to the gateway is trusted). Availability changes are published retained by the gateway.
"""

import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path

from .config import DeviceConfig


@dataclass
class Device:
    id: str
    kind: str
    mac: str | None = None
    key: bytes | None = None
    link: str = ""  # where it was last heard
    console: str = ""  # the serial link it said HELLO on: where its commands go
    online: bool = False
    last_seen: float | None = None
    battery: float | None = None
    rssi: int | None = None
    firmware: str | None = None
    bthome_counter: int | None = None  # the highest BTHome counter accepted: replays stay out
    extra: dict = field(default_factory=dict)

    def status(self, gateway_id: str) -> dict:
        return {
            "online": self.online,
            "last_seen": self.last_seen,
            "battery": self.battery,
            "rssi": self.rssi,
            "firmware": self.firmware,
            "gateway": gateway_id,
            "link": self.link,
        }


class Registry:
    def __init__(self, path: Path, configured: tuple[DeviceConfig, ...]):
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS devices (id TEXT PRIMARY KEY, kind TEXT NOT NULL, "
            "mac TEXT, key BLOB, link TEXT, last_seen REAL, firmware TEXT, bthome_counter INTEGER)"
        )
        columns = [row[1] for row in self._db.execute("PRAGMA table_info(devices)")]
        if "bthome_counter" not in columns:  # a registry written before the column existed
            self._db.execute("ALTER TABLE devices ADD COLUMN bthome_counter INTEGER")
        self.devices: dict[str, Device] = {}
        for device_id, kind, mac, key, link, last_seen, firmware, counter in self._db.execute(
            "SELECT id, kind, mac, key, link, last_seen, firmware, bthome_counter FROM devices"
        ):
            self.devices[device_id] = Device(
                device_id, kind, mac, key, link, last_seen=last_seen, firmware=firmware,
                bthome_counter=counter,
            )  # fmt: skip
        for d in configured:  # the config is the authority on kinds, addresses and keys
            known = self.devices.setdefault(d.id, Device(d.id, d.kind))
            if (known.mac, known.key) != (d.mac, d.key):  # re-provisioned: a new count
                known.bthome_counter = None
            known.kind, known.mac, known.key = d.kind, d.mac, d.key
        self.unknown_adverts = 0
        self.save()

    def announce(self, device_id: str, kind: str, link: str, firmware: str | None) -> Device:
        device = self.devices.setdefault(device_id, Device(device_id, kind))
        device.link, device.firmware = link, firmware or device.firmware
        device.console = link
        return device

    def heard(self, device: Device, link: str, **fields) -> bool:
        """Records that a device spoke; True when its published status should change."""
        changed = not device.online or device.link != link
        device.online, device.link, device.last_seen = True, link, time.time()
        for name, value in fields.items():
            if value is not None and getattr(device, name) != value:
                setattr(device, name, value)
                changed = True
        return changed

    def silent(self, link: str, silent_after_s: float) -> list[Device]:
        """Devices on this link not heard for silent_after_s, now marked offline."""
        cutoff = time.time() - silent_after_s
        gone = []
        for device in self.devices.values():
            stale = device.last_seen is None or device.last_seen < cutoff
            if device.online and device.link == link and stale:
                device.online = False
                gone.append(device)
        return gone

    def save(self):
        with self._db:
            self._db.execute("BEGIN")
            self._db.executemany(
                "INSERT INTO devices VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET "
                "kind=excluded.kind, mac=excluded.mac, key=excluded.key, link=excluded.link, "
                "last_seen=excluded.last_seen, firmware=excluded.firmware, "
                "bthome_counter=excluded.bthome_counter",
                [
                    (d.id, d.kind, d.mac, d.key, d.link, d.last_seen, d.firmware, d.bthome_counter)
                    for d in self.devices.values()
                ],
            )

    def close(self):
        self.save()
        self._db.close()
