"""Scenario files for `luciole sim`: which boards run which apps where, the seed, and the faults.

seed = 7                      # the world's random draws (RSSI noise, MACs, noise bytes)
speed = 1.0                   # simulated seconds per wall second
ble = true                    # start the BlueZ stand-in: adverts reach a gateway over D-Bus

[[boards]]
id = "bcn-hall"               # with count = N: bcn-hall-001 ... bcn-hall-N
app = "beacon"
position_m = [3.0, 4.0]       # from the gateway's BLE adapter at [0, 0]
count = 1
[boards.config]               # the board's config store at first boot
major = 3

[street]                      # a parking street: one parking_sensor board per bay, calibrated
bays = 10                     # boards ps-bay-000 ... ps-bay-009, 2.6 m apart along the kerb
seed = 3                      # the street's draw: direction, vehicles, traffic (default: seed)
start_s = 28800.0             # the street's time of day when the world starts (default 07:00)

[[faults]]
at_s = 30.0                   # simulated seconds from the start
board = "bcn-hall"            # a board id (a street's boards too)
kind = "reboot"               # reboot | power-cut | unplug | noise
duration_s = 5.0              # unplug and noise: for how long
"""

import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from luciole.edge.cli import UsageError
from luciole.protocols.topics import is_valid_id

from .firmware_build import apps
from .parking_world import DEVICE_PREFIX
from .street import DAY_S, default_bay_ids
from .world import BoardSpec

FAULT_KINDS = ("reboot", "power-cut", "unplug", "noise")
MAX_STREET_BAYS = 100
STREET_START_S = 7 * 3600.0  # a street's time of day when the world starts, by default


@dataclass
class Fault:
    at_s: float
    board: str
    kind: str
    duration_s: float = 0.0


@dataclass
class StreetSpec:
    bays: int
    seed: int
    start_s: float = STREET_START_S

    def board_ids(self) -> list[str]:
        return [DEVICE_PREFIX + bay for bay in default_bay_ids(self.bays)]


@dataclass
class Scenario:
    seed: int = 0
    speed: float = 1.0
    ble: bool = False
    boards: list[BoardSpec] = field(default_factory=list)
    street: StreetSpec | None = None
    faults: list[Fault] = field(default_factory=list)


def load(path: Path) -> Scenario:
    try:
        data = tomllib.loads(Path(path).read_text())
    except OSError as e:
        raise UsageError(f"{path}: cannot read: {e.strerror}") from None
    except tomllib.TOMLDecodeError as e:
        raise UsageError(f"{path}: not TOML: {e}") from None

    def bad(where, what):
        return UsageError(f"{path}: {where}: {what}")

    unknown = set(data) - {"seed", "speed", "ble", "boards", "street", "faults"}
    if unknown:
        raise bad(sorted(unknown)[0], "unknown key")
    scenario = Scenario(
        seed=_typed(data, "seed", int, 0, bad),
        speed=float(_typed(data, "speed", (int, float), 1.0, bad)),
        ble=_typed(data, "ble", bool, False, bad),
    )
    if scenario.speed <= 0:
        raise bad("speed", f"must be > 0, got {scenario.speed}")
    for i, table in enumerate(data.get("boards", [])):
        scenario.boards += _boards(table, f"boards[{i}]", bad)
    if "street" in data:
        scenario.street = _street(_typed(data, "street", dict, None, bad), scenario.seed, bad)
    if not scenario.boards and scenario.street is None:
        raise bad("boards", "a scenario needs at least one [[boards]] table or a [street]")
    ids = [b.id for b in scenario.boards] + (scenario.street.board_ids() if scenario.street else [])
    duplicate = next((i for i in ids if ids.count(i) > 1), None)
    if duplicate:
        raise bad("boards", f"board id {duplicate!r} used twice")
    for i, table in enumerate(data.get("faults", [])):
        fault = _fault(table, f"faults[{i}]", bad)
        if fault.board not in ids:
            raise bad(f"faults[{i}].board", f"no board {fault.board!r}")
        scenario.faults.append(fault)
    scenario.faults.sort(key=lambda f: f.at_s)
    return scenario


def _typed(table, key, kind, default, bad, where=""):
    if key not in table and default is None:
        raise bad(where + key, "required")
    value = table.get(key, default)
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise bad(where + key, f"wrong type: {value!r}")
    return value


def _boards(table, where, bad):
    unknown = set(table) - {"id", "app", "position_m", "count", "config", "battery_mv"}
    if unknown:
        raise bad(f"{where}.{sorted(unknown)[0]}", "unknown key")
    base = _typed(table, "id", str, None, bad, where + ".") if "id" in table else None
    if base is None or not is_valid_id(base):
        raise bad(f"{where}.id", f"needs an id matching [a-z0-9][a-z0-9-]{{0,63}}, got {base!r}")
    app = table.get("app")
    if app not in apps():
        raise bad(f"{where}.app", f"unknown app {app!r}; apps: {', '.join(apps())}")
    position = table.get("position_m", [0.0, 0.0])
    if not (isinstance(position, list) and len(position) == 2
            and all(isinstance(c, (int, float)) for c in position)):  # fmt: skip
        raise bad(f"{where}.position_m", f"must be [x, y] in metres, got {position!r}")
    count = _typed(table, "count", int, 1, bad, where + ".")
    if not 1 <= count <= 500:
        raise bad(f"{where}.count", f"must be 1 to 500, got {count}")
    config = _typed(table, "config", dict, {}, bad, where + ".")
    battery_mv = _typed(table, "battery_mv", int, 3000, bad, where + ".")
    ids = [base] if count == 1 else [f"{base}-{n:03d}" for n in range(1, count + 1)]
    x, y = position
    return [
        BoardSpec(id=i, app=app, position_m=(x + 2.0 * n, y), config=dict(config),
                  battery_mv=battery_mv)
        for n, i in enumerate(ids)
    ]  # fmt: skip


def _street(table, seed, bad):
    unknown = set(table) - {"bays", "seed", "start_s"}
    if unknown:
        raise bad(f"street.{sorted(unknown)[0]}", "unknown key")
    bays = _typed(table, "bays", int, None, bad, "street.")
    if not 1 <= bays <= MAX_STREET_BAYS:
        raise bad("street.bays", f"must be 1 to {MAX_STREET_BAYS}, got {bays}")
    start_s = float(_typed(table, "start_s", (int, float), STREET_START_S, bad, "street."))
    if not 0 <= start_s < DAY_S:
        raise bad("street.start_s", f"must be a time of day, 0 to {DAY_S} s, got {start_s:g}")
    return StreetSpec(bays, _typed(table, "seed", int, seed, bad, "street."), start_s)


def _fault(table, where, bad):
    unknown = set(table) - {"at_s", "board", "kind", "duration_s"}
    if unknown:
        raise bad(f"{where}.{sorted(unknown)[0]}", "unknown key")
    kind = table.get("kind")
    if kind not in FAULT_KINDS:
        raise bad(f"{where}.kind", f"must be one of {', '.join(FAULT_KINDS)}, got {kind!r}")
    at_s = float(_typed(table, "at_s", (int, float), None, bad, where + "."))
    duration_s = float(_typed(table, "duration_s", (int, float), 0.0, bad, where + "."))
    if kind in ("unplug", "noise") and duration_s <= 0:
        raise bad(f"{where}.duration_s", f"{kind} needs a duration_s > 0")
    board = _typed(table, "board", str, "", bad, where + ".")
    return Fault(at_s=at_s, board=board, kind=kind, duration_s=duration_s)
