"""`luciole parking`: import a city's bay inventory, export the bays' current state.

    luciole parking import FILE --config gateway.toml
    luciole parking export --config gateway.toml --format csv|geojson [--output FILE]

Both work on the gateway's data_dir/parking.db, while the gateway runs or not (it picks up a new
inventory within a second). docs/parking.md describes the files.
"""

import csv
import io
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from . import config as config_module
from . import parking_inventory
from .cli import UsageError
from .parking import iso, status_of

EXPORT_COLUMNS = ("id", "name", "site", "site_name", "status", "status_since", "lat", "lon")


def parking_command(subparsers):
    parser = subparsers.add_parser(
        "parking",
        help="parking bays: import an inventory, export the current state",
        description="The parking bays of the gateway whose config is given: import the city's "
        "list of bays into data_dir/parking.db, export their current state for an open-data "
        "portal. See docs/parking.md.",
    )
    actions = parser.add_subparsers(title="actions", metavar="ACTION", required=True)
    imports = actions.add_parser(
        "import",
        help="load a bay inventory (CSV or GeoJSON) into the gateway's parking.db",
        description="Reads FILE (.csv or .geojson/.json), prints a summary and every row it "
        "could not use (line or feature, column, value, reason), and replaces the inventory in "
        "one transaction: if anything fails, the previous inventory stays. Bays that "
        "[[devices]] spot names must be in the new inventory. What the gateway learnt about "
        "bays that stay (status, closures) is kept.",
    )
    imports.add_argument("file", metavar="FILE", help="the bay inventory: .csv, .geojson or .json")
    imports.add_argument("--config", required=True, metavar="TOML", help="the gateway's config")
    imports.add_argument("--dry-run", action="store_true", help="read and report, change nothing")
    imports.set_defaults(handler=_import)
    exports = actions.add_parser(
        "export",
        help="write every bay's current status as CSV or GeoJSON",
        description="Every bay with its site, status (free, occupied, closed, unknown: a sensor "
        "silent for [parking] unknown_after_s is unknown), since when, and position. Written "
        "to --output atomically (a reader never sees half a file), or to standard output.",
    )
    exports.add_argument("--config", required=True, metavar="TOML", help="the gateway's config")
    exports.add_argument("--format", required=True, choices=("csv", "geojson"))
    exports.add_argument("--output", metavar="FILE", help="where to write (default: stdout)")
    exports.set_defaults(handler=_export)


def _config(path, check_spots):
    try:
        return config_module.load(path, check_spots=check_spots)
    except config_module.ConfigError as e:
        raise UsageError(str(e)) from None


def _import(args) -> int:
    config = _config(args.config, check_spots=False)
    try:
        inventory = parking_inventory.read(args.file)
        required = [(d.spot, f"sensor {d.id}") for d in config.devices if d.spot is not None]
        if not args.dry_run:
            parking_inventory.save(config.parking_db, inventory, required)
    except parking_inventory.InventoryError as e:
        raise UsageError(str(e)) from None
    verb = "would import" if args.dry_run else "imported"
    print(
        f"{args.file}: {verb} {len(inventory.bays)} bays in {len(inventory.sites)} sites"
        + ("" if args.dry_run else f" into {config.parking_db}")
        + f"; {len(inventory.skipped)} row(s) skipped"
    )
    if inventory.ignored_columns:
        print(f"ignored columns: {', '.join(inventory.ignored_columns)}")
    for skipped in inventory.skipped:
        print(f"skipped {skipped}")
    return 0


def _export(args) -> int:
    config = _config(args.config, check_spots=False)
    if not config.parking_db.exists():
        raise UsageError(f"no parking inventory in {config.data_dir}: run `luciole parking import`")
    try:
        rows = _rows(config)
    except parking_inventory.InventoryError as e:
        raise UsageError(str(e)) from None
    text = _csv(rows) if args.format == "csv" else _geojson(rows)
    if args.output is None:
        sys.stdout.write(text)
        return 0
    _write_atomically(Path(args.output), text)
    print(f"{args.output}: {len(rows)} bays", file=sys.stderr)
    return 0


def _rows(config) -> list[dict]:
    db = parking_inventory.connect(config.parking_db)
    try:
        bays, sites = parking_inventory.load(db)
        learnt = {
            row[0]: row[1:]
            for row in db.execute(
                "SELECT spot, occupied, reported, closed_reason, modified FROM spot_state"
            )
        }
    finally:
        db.close()
    if not bays:
        raise parking_inventory.InventoryError(
            f"{config.parking_db}: no bays: run `luciole parking import`"
        )
    now = time.time()
    rows = []
    for bay in sorted(bays.values(), key=lambda b: b.id):
        occupied, reported, closed_reason, modified = learnt.get(bay.id, (None,) * 4)
        status = status_of(occupied, reported, closed_reason, now, config.parking.unknown_after_s)
        silent_s = None if reported is None else now - reported
        if (
            status == "unknown"
            and silent_s is not None
            and silent_s > config.parking.unknown_after_s
        ):
            modified = reported + config.parking.unknown_after_s  # unknown since then
        rows.append(
            {
                "id": bay.id,
                "name": bay.name,
                "site": bay.site,
                "site_name": sites[bay.site].name if bay.site in sites else "",
                "status": status,
                "status_since": iso(modified) if modified is not None else "",
                "lat": bay.lat,
                "lon": bay.lon,
            }
        )
    return rows


def _csv(rows) -> str:
    out = io.StringIO(newline="")
    writer = csv.DictWriter(out, EXPORT_COLUMNS, lineterminator="\r\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def _geojson(rows) -> str:
    features = [
        {
            "type": "Feature",
            "id": row["id"],
            "geometry": {"type": "Point", "coordinates": [row["lon"], row["lat"]]},
            "properties": {k: v for k, v in row.items() if k not in ("lat", "lon")},
        }
        for row in rows
    ]
    document = {"type": "FeatureCollection", "features": features}
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")) + "\n"


def _write_atomically(path: Path, text: str):
    """A temporary file beside the target, synced, then renamed over it."""
    try:
        fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as e:
        raise UsageError(f"{path}: cannot write: {e.strerror}") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except OSError as e:
        Path(temporary).unlink(missing_ok=True)
        raise UsageError(f"{path}: cannot write: {e.strerror}") from None
