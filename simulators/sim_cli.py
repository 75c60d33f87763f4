"""`luciole sim --scenario FILE`: the simulated world and its boards, for a gateway to use."""

import asyncio
import json
import tempfile
from pathlib import Path

from luciole.edge.cli import UsageError

from . import scenario as scenarios
from .parking_world import ParkingWorld
from .street import Street
from .world import World, stop_signals


def sim_command(subparsers):
    parser = subparsers.add_parser(
        "sim",
        help="start the simulated world and its sim boards from a scenario file",
        description="Starts the boards of a scenario, each the real firmware under MicroPython's "
        "unix port on the host_sim board, and the world they live in (time, sensors, the BLE air). "
        "Prints where to connect: each board's serial port (a pty, as /dev/ttyACM0) and, with "
        "ble = true, the D-Bus address to give the gateway as DBUS_SYSTEM_BUS_ADDRESS; with a "
        "[street], the gateway config tables, bay inventory and ground truth it wrote for it. The "
        "last line printed at start is one JSON object with the same, for programs. Runs until "
        "Ctrl-C, or for --duration-s. The scenario format is described in docs/simulator.md.",
    )
    parser.add_argument("--scenario", type=Path, required=True, metavar="FILE", help="TOML")
    parser.add_argument(
        "--workdir",
        type=Path,
        metavar="DIR",
        help="where ptys, board storage, firmware builds and board logs go "
        "(default: a new temporary folder, removed at the end)",
    )
    parser.add_argument(
        "--duration-s", type=float, metavar="S", help="stop after S simulated seconds"
    )
    parser.set_defaults(handler=_run)


def _run(args):
    scenario = scenarios.load(args.scenario)
    if args.duration_s is not None and args.duration_s <= 0:
        raise UsageError("--duration-s must be > 0")
    if args.workdir is not None:
        args.workdir.mkdir(parents=True, exist_ok=True)
        asyncio.run(_simulate(scenario, args.workdir, args.duration_s))
    else:
        with tempfile.TemporaryDirectory(prefix="luciole-sim-") as workdir:
            asyncio.run(_simulate(scenario, Path(workdir), args.duration_s))
    return 0


async def _simulate(scenario, workdir: Path, duration_s):
    air = None
    if scenario.ble:
        from .bluez import FakeBlueZ

        air = FakeBlueZ(log_path=workdir / "bluez.log").start()
    try:
        world = World(workdir, speed=scenario.speed, seed=scenario.seed, air=air)
        apps = {spec.app for spec in scenario.boards}
        for app in apps | ({"parking_sensor"} if scenario.street else set()):
            world.firmware_for(app)  # compiled before the clock starts
        world.host_sim_hal()
        async with world:
            for spec in scenario.boards:
                world.add(spec)
            street = _street(world, scenario, workdir) if scenario.street else None
            ready = {
                "boards": {b.id: str(b.tty_path) for b in world.boards.values()},
                "dbus": air.bus.address if air else None,
                "world_port": world.port,
                "workdir": str(workdir),
                "street": street,
            }
            for board in world.boards.values():
                print(f"{board.id:<20} {board.spec.app:<16} {board.tty_path}")
            if air:
                print(f"BLE: DBUS_SYSTEM_BUS_ADDRESS={air.bus.address}")
            if street:
                print(f"street: gateway config tables {street['gateway_tables']}, bay inventory "
                      f"{street['inventory']} (luciole parking import), ground truth "
                      f"{street['truth']}")  # fmt: skip
            print(json.dumps(ready), flush=True)
            stop = asyncio.Event()
            stop_signals(asyncio.get_running_loop(), stop)
            waits = [asyncio.ensure_future(stop.wait())]
            if duration_s is not None:
                waits.append(asyncio.ensure_future(world.sleep(duration_s)))
            faults = asyncio.ensure_future(world.run_faults(scenario.faults))
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            faults.cancel()
            for wait in waits:
                wait.cancel()
    finally:
        if air is not None:
            air.close()


def _street(world, scenario, workdir: Path) -> dict:
    """A scenario's parking street: its calibrated sensor boards, and the files a gateway and a
    city need to follow it (paths, as strings)."""
    spec = scenario.street
    street = Street(spec.bays, seed=spec.seed)
    parking = ParkingWorld(world, street, seed=spec.seed, start_s=spec.start_s)
    parking.add_boards(calibrated=True)
    tables = workdir / "street-gateway.toml"
    tables.write_text(parking.gateway_tables())
    return {
        "gateway_tables": str(tables),
        "inventory": str(parking.inventory_csv(workdir / "street-bays.csv")),
        "truth": str(parking.truth_csv(workdir / "street-truth.csv")),
    }
