"""A simulated street in the simulated world: one parking sensor sim board (the real firmware) per
bay, reading the street's magnetic field, and what a gateway needs to hear them.

The street (simulators/street.py) is a pure function of its own time. Its clock runs with the
world's, from `start_s` (street time at world time 0); `jump(to_s)` moves it, so the boards can
boot and be calibrated on a quiet street before the traffic starts, however long that takes on a
loaded machine.

Provisioning is what a technician does: each board gets its BTHome key at first boot (the config
store), then `calibrate()` sends `calibrate` over its console while the bays are empty.
"""

import asyncio
import json
import math
import random
import time
from dataclasses import dataclass

from .world import BoardSpec, World

SITE_ID, SITE_NAME = "rue-ernest-renan", "Rue Ernest Renan"  # every bay of the street: one site
ORIGIN_LAT_LON = (48.8245, 2.2707)  # Issy-les-Moulineaux: where the kerb's first bay is
_M_PER_DEG_LAT = 111_320.0
_NOT_READY = "not enough readings yet"  # the detector's reply while its window fills
DEVICE_PREFIX = "ps-"  # a sensor's device id: the prefix, then its bay's id


@dataclass
class Sensor:
    id: str  # device id, also the board id
    bay: str
    mac: str
    key: bytes


class ParkingWorld:
    def __init__(self, world: World, street, seed=0, start_s=0.0, device_prefix=DEVICE_PREFIX):
        self.world = world
        self.street = street
        self._offset_s = start_s  # street time = world time + offset
        rng = random.Random(seed)
        self.sensors = [
            Sensor(
                id=f"{device_prefix}{bay}",
                bay=bay,
                mac=f"54:48:E6:{i >> 16 & 255:02X}:{i >> 8 & 255:02X}:{i & 255:02X}",
                key=rng.randbytes(16),
            )
            for i, bay in enumerate(street.bay_ids)
        ]
        self._bay_of = {s.id: s.bay for s in self.sensors}
        self.site_id = SITE_ID
        # the gateway's adapter in the middle of the kerb, across the pavement
        world.gateway_position_m = (street.pitch_m * (street.n_bays - 1) / 2, 0.0)
        world.magnetometer = self._field

    # -- time ---------------------------------------------------------------------------------

    def now_s(self) -> float:
        """The street's time now."""
        return self.world.now_s() + self._offset_s

    def jump(self, to_s: float):
        """The street's clock reads to_s now (and runs on from there)."""
        self._offset_s = to_s - self.world.now_s()

    def _field(self, board, world_s):
        return self.street.field_ut(self._bay_of[board.id], world_s + self._offset_s)

    # -- boards -------------------------------------------------------------------------------

    def add_boards(self, config=None, calibrated=False):
        """Starts one parking sensor board per bay, at its bay; `config`: more first-boot config.
        calibrated: each board starts with the baseline a technician's calibration on its empty
        bay would have stored (otherwise `calibrate` it)."""
        boards = []
        for i, sensor in enumerate(self.sensors):
            first_boot = {"bthome_key": sensor.key.hex(), **(config or {})}
            if calibrated:
                baseline = self.street.empty_field_ut(sensor.bay, self.now_s())
                first_boot["parking_baseline_ut"] = [round(v, 2) for v in baseline]
            spec = BoardSpec(
                sensor.id,
                "parking_sensor",
                position_m=(i * self.street.pitch_m, 2.5),
                mac=sensor.mac,
                config=first_boot,
            )
            boards.append(self.world.add(spec))
        return boards

    async def calibrate(self, ask, sensor_id, timeout_s=60.0):
        """The technician's `calibrate` on one sensor through `ask(target, command, payload)`
        (an operator on the gateway's cmd topic), retried while the sensor has not read enough
        yet. The board's reply: {"ok": True, "result": ...} or {"ok": False, "error": ...}."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while True:
            reply = await ask(sensor_id, "calibrate", json.dumps({"args": {}}).encode())
            if reply["ok"] or _NOT_READY not in reply["error"] or loop.time() > deadline:
                return reply
            await asyncio.sleep(0.5)

    async def calibrate_all(self, ask, timeout_s=60.0):
        """Calibrates every sensor, one after the other (as one technician with one tool);
        raises naming a sensor that refused."""
        for sensor in self.sensors:
            reply = await self.calibrate(ask, sensor.id, timeout_s)
            if not reply["ok"]:
                raise RuntimeError(f"{sensor.id} refused calibration: {reply['error']}")

    # -- what the gateway and the city need ---------------------------------------------------

    def gateway_tables(self, unknown_after_s=600.0, keys=None) -> str:
        """TOML for the gateway's config: [ble], [parking] and one [[devices]] per sensor; `keys`
        ({sensor id: key bytes}) overrides what the gateway believes a sensor's key is."""
        keys = keys or {}
        lines = ["[ble]", "[parking]", f"unknown_after_s = {float(unknown_after_s)}"]
        for s in self.sensors:
            lines += ["[[devices]]", f'id = "{s.id}"', 'kind = "parking-sensor"']
            lines += [f'mac = "{s.mac}"', f'key = "{keys.get(s.id, s.key).hex()}"']
            lines += [f'spot = "{s.bay}"']
        return "\n".join(lines) + "\n"

    def inventory_csv(self, path):
        """The bay inventory for `luciole parking import`: the street's bays, one site."""
        lat0, lon0 = ORIGIN_LAT_LON
        m_per_deg_lon = _M_PER_DEG_LAT * math.cos(math.radians(lat0))
        rows = ["id,name,site,site_name,lat,lon"]
        for i, bay in enumerate(self.street.bay_ids):
            lon = lon0 + i * self.street.pitch_m / m_per_deg_lon  # the kerb runs east
            rows.append(f"{bay},{bay},{SITE_ID},{SITE_NAME},{lat0:.6f},{lon:.6f}")
        path.write_text("\n".join(rows) + "\n")
        return path

    def truth_csv(self, path):
        """The street's ground truth: bay_id, time of day (street time, HH:MM:SS), occupied."""
        rows = ["bay_id,time,occupied"]
        for i, t_s, occupied in self.street.truth:
            if 0 <= t_s < self.street.duration_s:
                clock = time.strftime("%H:%M:%S", time.gmtime(t_s))
                rows.append(f"{self.street.bay_ids[i]},{clock},{int(occupied)}")
        path.write_text("\n".join(rows) + "\n")
        return path

    def truth(self, street_s=None) -> dict[str, str]:
        """{bay: "occupied" | "free"} as the street really is at street_s (default: now)."""
        t_s = self.now_s() if street_s is None else street_s
        return {
            bay: "occupied" if self.street.occupied(bay, t_s) else "free"
            for bay in self.street.bay_ids
        }

    def last_change_s(self) -> float:
        """When the street's last ground-truth change happens (stays still open at the street's
        end, `duration_s`, leave then: that is no change within the simulation)."""
        return max(t for _, t, _ in self.street.truth if t < self.street.duration_s)
