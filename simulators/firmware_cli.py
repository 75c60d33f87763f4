"""`luciole firmware build|deploy`: the file set a real board runs, and installing it with mpremote.

luciole firmware build --board rpi_pico_w --app beacon --out build/beacon
luciole firmware deploy --port /dev/ttyACM0 --build build/beacon
"""

import json
import shutil
import subprocess
import sys
from pathlib import Path

from luciole.edge.cli import UsageError

from .firmware_build import apps, boards, build


def firmware_command(subparsers):
    parser = subparsers.add_parser(
        "firmware",
        help="build a board's firmware file set; deploy it to a board with mpremote",
        description="Firmware for real boards (docs/firmware.md). `build` compiles the app, the "
        "runtime and the protocol modules to .mpy with mpy-cross and writes them with the board's "
        "definition, its HAL and a main.py; `deploy` copies such a build to a board over USB with "
        "mpremote and installs the micropython-lib packages its manifest lists.",
    )
    actions = parser.add_subparsers(title="actions", metavar="ACTION", required=True)
    make = actions.add_parser("build", help="compile an app for a board into a folder")
    make.add_argument("--board", required=True, help="one of: " + ", ".join(boards()))
    make.add_argument("--app", required=True, help="one of: " + ", ".join(apps()))
    make.add_argument(
        "--out", type=Path, metavar="DIR", help="where to write it (default: build/BOARD-APP)"
    )
    make.set_defaults(handler=_build)
    deploy = actions.add_parser("deploy", help="install a build on a board with mpremote")
    deploy.add_argument("--port", required=True, help="the board's serial port, /dev/ttyACM0")
    deploy.add_argument("--build", type=Path, required=True, metavar="DIR", help="a build folder")
    deploy.add_argument(
        "--dry-run", action="store_true", help="print the mpremote commands instead of running them"
    )
    deploy.set_defaults(handler=_deploy)


def _build(args):
    out = args.out or Path("build") / f"{args.board}-{args.app}"
    manifest = build(args.board, args.app, out)
    size = sum((out / name).stat().st_size for name in manifest["files"])
    print(f"{args.app} for {args.board}: {len(manifest['files'])} files, {size:,} bytes in {out}")
    if manifest["mip"]:
        print("micropython-lib packages to install: " + ", ".join(manifest["mip"]))
    print(f"next: luciole firmware deploy --port /dev/ttyACM0 --build {out}")
    return 0


def deploy_commands(port: str, folder: Path) -> list[list[str]]:
    """The mpremote invocations installing a build (one connection each, so a failure names its
    step)."""
    manifest_path = folder / "manifest.json"
    try:
        manifest = json.loads(manifest_path.read_text())
    except (OSError, ValueError):
        raise UsageError(f"{folder}: not a firmware build (no readable manifest.json)") from None
    mpremote = shutil.which("mpremote", path=str(Path(sys.executable).parent)) or "mpremote"
    base = [mpremote, "connect", port]
    steps = [[*base, "mip", "install", package] for package in manifest["mip"]]
    folders = sorted({str(p) for name in manifest["files"] for p in Path(name).parents} - {"."})
    steps += [[*base, "fs", "mkdir", f":{name}"] for name in folders]
    steps += [[*base, "fs", "cp", str(folder / name), f":{name}"] for name in manifest["files"]]
    steps.append([*base, "reset"])
    return steps


def _deploy(args):
    steps = deploy_commands(args.port, args.build)
    if args.dry_run:
        for step in steps:
            print(" ".join(step))
        return 0
    if not Path(args.port).exists():
        raise UsageError(f"--port {args.port}: no such serial port (is the board plugged in?)")
    for n, step in enumerate(steps, 1):
        print(f"[{n}/{len(steps)}] {' '.join(step[3:])}", flush=True)
        done = subprocess.run(step, capture_output=True, text=True)
        mkdir_exists = step[3:5] == ["fs", "mkdir"] and "EEXIST" in done.stderr
        if done.returncode != 0 and not mkdir_exists:
            last = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
            raise UsageError(f"{' '.join(step[3:])}: {last[0]}")
    return 0
