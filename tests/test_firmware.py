"""The firmware runtime on the MicroPython unix port: its config store under power cuts, a real
board's build running on host_sim, and the simulator's scenario files."""

import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import serial

from luciole.protocols.ble import adv, ibeacon
from luciole.simulators import micropython
from luciole.simulators.bench.firmware import (
    GOAL_HEAP,
    PROVISIONED,
    ConsoleClient,
    _fed,
    put_on_air,
)
from luciole.simulators.firmware_build import apps
from luciole.simulators.street import Street
from luciole.simulators.world import BoardSpec, World

HERE = Path(__file__).resolve().parent
LUCIOLE = Path(sys.executable).parent / "luciole"


def test_a_power_cut_during_config_writes_leaves_the_old_or_the_new_config(tmp_path):
    """200 kill -9 at random moments of a write loop: every boot finds a whole config, never
    older than the one before."""
    rng = random.Random(7)
    env = dict(os.environ, MICROPYPATH=f"{micropython.SOURCE_ROOT}:.frozen")
    script = HERE / "firmware_scripts" / "config_writer.py"
    found = []
    for _ in range(200):
        writer = subprocess.Popen(
            [micropython.interpreter(), str(script), str(tmp_path)],
            stdout=subprocess.PIPE,
            env=env,
            text=True,
        )
        found.append(writer.stdout.readline().split())
        time.sleep(rng.uniform(0, 0.02))  # some of the writes since boot, then the cut
        writer.send_signal(signal.SIGKILL)
        writer.wait()
        writer.stdout.close()
    counters = []
    for _, n, *payload in found:
        n = int(n)
        assert payload == ([str(n) * (n % 97 + 1)] if n else [])  # whole, never a mix
        counters.append(n)
    assert counters == sorted(counters)  # never back to an older config
    assert counters[-1] > 200  # writes were under way when the power went


async def _board_up(world, board, timeout_s=20):
    await asyncio.wait_for(board.connected.wait(), timeout_s)
    deadline = time.monotonic() + timeout_s
    while board.advert is None and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    return board.advert


async def test_a_build_for_the_pico_runs_on_host_sim_unchanged(tmp_path):
    build = tmp_path / "pico-beacon"
    done = subprocess.run(
        [str(LUCIOLE), "firmware", "build", "--board", "rpi_pico_w", "--app", "beacon",
         "--out", str(build)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    manifest = json.loads((build / "manifest.json").read_text())
    assert manifest["mip"] == ["aioble"]
    assert "lib/boards/hal_rp2.mpy" in manifest["files"]
    before = {p: p.read_bytes() for p in build.rglob("*") if p.is_file()}

    async with World(tmp_path / "world", speed=5) as world:
        board = world.add(BoardSpec("bcn-pico", "beacon", config={"major": 12}), firmware=build)
        advert = await _board_up(world, board)
        assert advert is not None, (tmp_path / "world" / "bcn-pico.log").read_text()
        seen = {}
        while len(seen) < 3:  # the beacon rotates iBeacon, Eddystone-UID and Eddystone-TLM
            data = adv.parse(board.advert[0])
            seen[bytes(board.advert[0][:9])] = data
            await asyncio.sleep(0.05)
        beacons = [d["manufacturer_data"][ibeacon.COMPANY_ID] for d in seen.values()
                   if ibeacon.COMPANY_ID in d["manufacturer_data"]]  # fmt: skip
        assert ibeacon.decode(beacons[0])["major"] == 12
        assert board.process.args[-1] == str(build / "main.py")
    # the simulator ran the build's own files, and left them as they were
    assert before == {p: p.read_bytes() for p in build.rglob("*") if p.is_file()}


def test_a_build_carries_the_aliases_its_app_uses_and_refuses_a_board_without_them(tmp_path):
    build = tmp_path / "pico-luminaire"
    done = subprocess.run(
        [str(LUCIOLE), "firmware", "build", "--board", "rpi_pico_w", "--app", "luminaire",
         "--out", str(build)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    on_board = json.loads((build / "board.json").read_text())
    assert sorted(on_board["aliases"]) == ["lifi_tx", "link_uart", "status_led"]
    # the ESP32-C3 has no Li-Fi output: the technician hears it at build time, not from the board
    done = subprocess.run(
        [str(LUCIOLE), "firmware", "build", "--board", "esp32_c3", "--app", "luminaire",
         "--out", str(tmp_path / "c3-luminaire")],
        capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode != 0
    assert done.stderr.strip().splitlines() == [
        "luciole firmware: luminaire needs lifi_tx, which esp32_c3 lacks"
    ]
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "c3-luminaire").exists()


# What a technician and the gateway ask each app, besides what put_on_air gives a luminaire; the
# id takes every character an id may hold (a board must not keep one name per character).
PROVISIONING = [
    ("identify", None),
    ("config-get", None),
    ("config-set", {"values": {"label": "bay 12, rue Guynemer"}}),
    ("config-set", {"values": {"id": "abcdefghijklmnopqrstuvwxyz-0123456789"}}),
    ("info", None),
]
APP_COMMANDS = {
    "parking_sensor": [("calibrate", {}), ("parking-status", None)],
    "luminaire": [("lifi-status", None), ("dim", {"level_pct": 30})],
}


def _ask_all(tty_path, commands):
    with serial.Serial(str(tty_path), timeout=0.1) as port:
        console = ConsoleClient(port)
        return [console.ask(name, args) for name, args in commands]


async def test_every_app_answers_every_command_in_the_goal_heap(tmp_path):
    """The steady loop fits the goal's 64k heap, and so do the cold commands a board loads on
    top of it, one at a time (docs/firmware.md, Memory): no MemoryError, no restart."""
    async with World(tmp_path, speed=30, heap=GOAL_HEAP) as world:
        boards = {app: world.add(BoardSpec(f"goal-{app}", app, config=PROVISIONED.get(app, {})))
                  for app in apps()}  # fmt: skip
        await _fed(list(boards.values()), 90, feeds=1)
        await asyncio.to_thread(put_on_air, boards["luminaire"].tty_path)
        replies = {}
        for app, board in boards.items():
            commands = APP_COMMANDS.get(app, []) + PROVISIONING
            try:
                replies[app] = await asyncio.to_thread(_ask_all, board.tty_path, commands)
            except TimeoutError as e:
                pytest.fail(f"{app}: {e}\n{board.log_path.read_text()[-2000:]}")
            identify, _, label_set, id_set, info = replies[app][-len(PROVISIONING) :]
            assert identify["id"] == board.id
            assert label_set == {"saved": ["label"], "reboot_needed": False}
            assert id_set == {"saved": ["id"], "reboot_needed": True}
            assert info["label"] == "bay 12, rue Guynemer"
            assert info["boots"] == 1 and board.starts == 1, board.log_path.read_text()
    calibrated, status = replies["parking_sensor"][:2]
    assert status["calibrated"] and status["baseline_ut"] == calibrated["baseline_ut"]
    assert replies["luminaire"][1] == {"ok": True, "level_pct": 30}


async def test_the_watchdog_resets_a_board_that_stops(tmp_path):
    async with World(tmp_path, speed=10) as world:
        board = world.add(BoardSpec("bcn-stuck", "beacon"))
        await _board_up(world, board)
        board.process.send_signal(signal.SIGSTOP)  # the firmware hangs
        deadline = time.monotonic() + 10
        while board.watchdog_resets == 0 and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        assert board.watchdog_resets == 1
        assert board.starts == 2
        assert await _board_up(world, board) is not None


@pytest.mark.parametrize(
    ("scenario", "error"),
    [
        ("seed = 1\n", "boards: a scenario needs at least one [[boards]] table"),
        (
            '[[boards]]\nid = "b1"\napp = "toaster"\n',
            "boards[0].app: unknown app 'toaster'; apps: ",
        ),
        ('[[boards]]\nid = "B 1"\napp = "beacon"\n', "boards[0].id: needs an id matching"),
        ('[[boards]]\nid = "b1"\napp = "beacon"\ncount = 0\n', "boards[0].count: must be 1 to 500"),
        ('speed = -1\n[[boards]]\nid = "b1"\napp = "beacon"\n', "speed: must be > 0, got -1.0"),
        (
            '[[boards]]\nid = "b1"\napp = "beacon"\n[[faults]]\nat_s = 1\nboard = "b2"\n'
            'kind = "reboot"\n',
            "faults[0].board: no board 'b2'",
        ),
        (
            '[[boards]]\nid = "b1"\napp = "beacon"\n[[faults]]\nat_s = 1\nboard = "b1"\n'
            'kind = "unplug"\n',
            "faults[0].duration_s: unplug needs a duration_s > 0",
        ),
        ("seed = [\n", "not TOML"),
        ("[street]\nbays = 0\n", "street.bays: must be 1 to 100, got 0"),
        ("[street]\nbays = 3\nstart = 7\n", "street.start: unknown key"),
        ("[street]\nbays = 3\nstart_s = 90000\n", "street.start_s: must be a time of day"),
    ],
)
def test_a_bad_scenario_is_one_line_naming_the_key(tmp_path, scenario, error):
    path = tmp_path / "scenario.toml"
    path.write_text(scenario)
    done = subprocess.run(
        [str(LUCIOLE), "sim", "--scenario", str(path)], capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 2
    assert done.stdout == ""
    [line] = done.stderr.splitlines()
    assert line.startswith(f"luciole sim: {path}: ")
    assert error in line


def run_sim(scenario, workdir, duration_s):
    """`luciole sim` on a scenario for duration_s simulated seconds; its finished process."""
    done = subprocess.run(
        [str(LUCIOLE), "sim", "--scenario", str(scenario), "--workdir", str(workdir),
         "--duration-s", str(duration_s)],
        capture_output=True, text=True, timeout=60 + duration_s,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done


def test_sim_prints_where_to_connect_and_plays_its_faults(tmp_path):
    path = tmp_path / "scenario.toml"
    path.write_text(
        'seed = 5\nspeed = 10\n[[boards]]\nid = "bcn"\napp = "beacon"\ncount = 2\n'
        '[[faults]]\nat_s = 5\nboard = "bcn-002"\nkind = "unplug"\nduration_s = 10\n'
    )
    done = run_sim(path, tmp_path / "w", duration_s=30)
    ready = json.loads(done.stdout.splitlines()[2])
    assert set(ready["boards"]) == {"bcn-001", "bcn-002"}
    log_1 = (tmp_path / "w" / "bcn-001.log").read_text()
    log_2 = (tmp_path / "w" / "bcn-002.log").read_text()
    assert log_1.count(" up on host_sim") == 1
    assert log_2.count(" up on host_sim") == 2  # unplugged (and so unpowered), then back


def test_sim_runs_a_calibrated_street_for_a_gateway(tmp_path):
    path = tmp_path / "scenario.toml"
    path.write_text("speed = 10\n[street]\nbays = 4\nseed = 5\nstart_s = 30000\n")
    done = run_sim(path, tmp_path / "w", duration_s=40)
    ready = json.loads(done.stdout.splitlines()[-1])
    sensors = [f"ps-bay-{i:03d}" for i in range(4)]
    assert sorted(ready["boards"]) == sensors
    tables = Path(ready["street"]["gateway_tables"]).read_text()
    assert all(f'id = "{sensor}"' in tables for sensor in sensors)
    assert Path(ready["street"]["inventory"]).read_text().startswith("id,name,site,")
    truth = Path(ready["street"]["truth"]).read_text().splitlines()
    assert truth[0] == "bay_id,time,occupied" and len(truth) > 4
    # each board starts calibrated for its empty bay and finds the street as it is: a bay
    # taken at the start (by a car the detector can see) is reported occupied at once
    street = Street(4, seed=5)
    for i, sensor in enumerate(sensors):
        log = (tmp_path / "w" / f"{sensor}.log").read_text()
        assert "not calibrated" not in log and log.count(" up on host_sim") == 1
        near = [v for v in street.vehicles if v["bay"] == i and v["arrive_s"] < 30100
                and v["leave_s"] > 30000]  # fmt: skip
        if not near:
            assert "bay occupied" not in log, sensor
        elif near[0]["arrive_s"] < 30000 < 30100 < near[0]["leave_s"] and near[0]["kind"] != "weak":
            assert "bay occupied" in log, sensor  # parked all along, strong enough to see
