# The parking sensor's `parking-status` command: the bay's state, the battery and the energy
# account. A cold command (firmware/runtime.py): this code is on the board's heap only while it
# runs.
from .energy import report
from .parking_detector import IDLE_MS

try:
    from micropython import const
except ImportError:

    def const(x):
        return x


_CELL_MAH = const(2600)


def parking_status(sensor, args):
    detector = sensor.detector
    b = detector.baseline
    out = {
        "state": "occupied" if detector.occupied else "vacant",
        "confirming": detector.next_ms() != IDLE_MS,
        "calibrated": b is not None,
        "baseline_ut": None if b is None else [round(b[0], 2), round(b[1], 2), round(b[2], 2)],
        "samples": detector.samples,
        "changes": detector.changes,
        "battery_mv": sensor.battery.read_mv(),
    }
    out["energy"] = report(
        sensor.hal.board["power_ua"],
        sensor.elapsed_s,
        detector.samples,
        sensor.adverts,
        sensor.bursts,
        _CELL_MAH,
    )
    out["estimated_battery_years"] = out["energy"].pop("battery_years")
    return out
