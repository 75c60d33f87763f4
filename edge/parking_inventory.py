"""A city's list of parking bays (CSV or GeoJSON) -> spots and parking sites, kept in parking.db.

Reading never stops at a bad row: each row it cannot use is reported as a Skipped (row, field,
value, reason) and the rest is imported. A file it cannot read at all raises InventoryError, one
line naming the file. docs/parking.md lists the accepted columns and how sites are formed:

- a `site` column names the site (an id) outright;
- otherwise a zone number makes the site `zone-{number}`;
- otherwise a street name makes the site its slug (`Rue Ernest Renan` -> `rue-ernest-renan`);
- a bay with none of them is skipped: a site's counts would mean nothing.

State columns of open-data exports (status, timestamps) are ignored: a bay's state comes from its
own sensor through the gateway, never from a file that may be months old.
"""

import csv
import io
import json
import math
import sqlite3
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

from luciole.protocols.topics import is_valid_id

# accepted column (or GeoJSON property) names, compared case-insensitively, first found wins
ID_COLUMNS = ("id", "spot", "spot_id", "bay", "bay_id", "kerbsideid")
LOCATION_COLUMNS = ("location",)  # "lat, lon", as Opendatasoft exports it
LAT_COLUMNS = ("lat", "latitude")
LON_COLUMNS = ("lon", "lng", "long", "longitude")
SITE_COLUMNS = ("site", "site_id")
ZONE_COLUMNS = ("zone", "zone_number", "zone_id")
STREET_COLUMNS = ("street", "street_name", "streetname", "road", "rue")
NAME_COLUMNS = ("name", "label")
SITE_NAME_COLUMNS = ("site_name",)
KNOWN_COLUMNS = (
    ID_COLUMNS
    + LOCATION_COLUMNS
    + LAT_COLUMNS
    + LON_COLUMNS
    + SITE_COLUMNS
    + ZONE_COLUMNS
    + STREET_COLUMNS
    + NAME_COLUMNS
    + SITE_NAME_COLUMNS
)
MAX_FILE_BYTES = 200 * 1024 * 1024


class InventoryError(Exception):
    """A file or database that cannot be used at all: one line."""


@dataclass(frozen=True)
class Bay:
    id: str
    site: str
    name: str
    lon: float
    lat: float
    site_name: str = ""


@dataclass(frozen=True)
class Site:
    id: str
    name: str
    lon: float  # the mean of its bays' positions
    lat: float


@dataclass(frozen=True)
class Skipped:
    row: str  # "line 12" (CSV, the header is line 1) or "feature 3" (GeoJSON, from 1)
    field: str
    value: str
    reason: str

    def __str__(self):
        return f"{self.row}: {self.field} = {self.value!r}: {self.reason}"


@dataclass
class Inventory:
    bays: dict[str, Bay] = field(default_factory=dict)
    sites: dict[str, Site] = field(default_factory=dict)
    skipped: list[Skipped] = field(default_factory=list)
    ignored_columns: list[str] = field(default_factory=list)


class _Unusable(Exception):
    def __init__(self, column, value, reason):
        super().__init__(reason)
        self.column, self.value, self.reason = column, value, reason


# -- reading files ------------------------------------------------------------------------------


def read(path) -> Inventory:
    """The bays of a .csv, .geojson or .json file."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".geojson", ".json"):
        raise InventoryError(f"{path}: expected a .csv, .geojson or .json file")
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise InventoryError(f"{path}: larger than {MAX_FILE_BYTES // 2**20} MiB")
        text = path.read_bytes().decode("utf-8-sig")  # Opendatasoft writes a BOM
    except OSError as e:
        raise InventoryError(f"{path}: cannot read: {e.strerror}") from None
    except UnicodeDecodeError as e:
        raise InventoryError(f"{path}: not UTF-8 text (byte {e.start})") from None
    inventory = _read_csv(path, text) if suffix == ".csv" else _read_geojson(path, text)
    if not inventory.bays:
        first = f"; first: {inventory.skipped[0]}" if inventory.skipped else ""
        raise InventoryError(
            f"{path}: no usable bay ({len(inventory.skipped)} row(s) skipped{first})"
        )
    _form_sites(inventory)
    return inventory


def _read_csv(path, text) -> Inventory:
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        raise InventoryError(f"{path}: empty file") from None
    except csv.Error as e:
        raise InventoryError(f"{path}: line 1: not CSV: {e}") from None
    columns = {}
    for index, name in enumerate(header):
        columns.setdefault(name.strip().lower(), (index, name.strip()))
    _require_columns(path, columns)
    inventory = Inventory(
        ignored_columns=[name for key, (_, name) in columns.items() if key not in KNOWN_COLUMNS]
    )
    line = 1
    try:
        for cells in reader:
            row = f"line {line + 1}"
            line = reader.line_num
            if not any(cell.strip() for cell in cells):
                continue  # a blank line, often the last one
            values = {}
            for key, (index, name) in columns.items():
                values[key] = (name, cells[index].strip() if index < len(cells) else "")
            _add(inventory, row, values)
    except csv.Error as e:
        raise InventoryError(f"{path}: line {reader.line_num}: not CSV: {e}") from None
    return inventory


def _read_geojson(path, text) -> Inventory:
    try:
        document = json.loads(text)
    except json.JSONDecodeError as e:
        raise InventoryError(f"{path}: not JSON: {e}") from None
    if not isinstance(document, dict) or document.get("type") != "FeatureCollection":
        raise InventoryError(f"{path}: expected a GeoJSON FeatureCollection")
    features = document.get("features")
    if not isinstance(features, list):
        raise InventoryError(f"{path}: features: expected a list")
    inventory = Inventory()
    ignored = {}
    for number, feature in enumerate(features, 1):
        row = f"feature {number}"
        if not isinstance(feature, dict) or feature.get("type") != "Feature":
            inventory.skipped.append(Skipped(row, "type", _show(feature), "not a GeoJSON Feature"))
            continue
        properties = feature.get("properties") or {}
        if not isinstance(properties, dict):
            properties = {}
        values = {}
        for name, value in properties.items():
            key = name.strip().lower()
            if key not in KNOWN_COLUMNS:
                ignored.setdefault(key, name)
            elif key not in values:
                values[key] = (name, "" if value is None else str(value).strip())
        if "id" not in values and feature.get("id") is not None:
            values["id"] = ("id", str(feature["id"]).strip())
        try:
            lon, lat = _geometry_point(feature.get("geometry"))
        except _Unusable as e:
            inventory.skipped.append(Skipped(row, e.column, e.value, e.reason))
            continue
        values["lon"], values["lat"] = ("geometry", repr(lon)), ("geometry", repr(lat))
        _add(inventory, row, values)
    inventory.ignored_columns = sorted(ignored.values())
    return inventory


def _require_columns(path, columns):
    found = ", ".join(name for _, name in columns.values()) or "none"
    if not _first(columns, ID_COLUMNS):
        raise InventoryError(
            f"{path}: no bay id column: expected one of {', '.join(ID_COLUMNS)}; found {found}"
        )
    has_latlon = _first(columns, LAT_COLUMNS) and _first(columns, LON_COLUMNS)
    if not (_first(columns, LOCATION_COLUMNS) or has_latlon):
        raise InventoryError(
            f'{path}: no location columns: expected location ("lat, lon") or lat and lon; '
            f"found {found}"
        )


def _first(values, names):
    return next((name for name in names if name in values), None)


def _get(values, names):
    """(column as written, value) of the first of `names` present, else (names[0], "")."""
    key = _first(values, names)
    return values[key] if key else (names[0], "")


def _add(inventory, row, values):
    try:
        bay = _bay(values)
    except _Unusable as e:
        inventory.skipped.append(Skipped(row, e.column, e.value, e.reason))
        return
    if bay.id in inventory.bays:
        column, value = _get(values, ID_COLUMNS)
        inventory.skipped.append(Skipped(row, column, value, "a bay with this id came earlier"))
        return
    inventory.bays[bay.id] = bay


def _bay(values) -> Bay:
    column, raw_id = _get(values, ID_COLUMNS)
    spot = raw_id.lower()
    if not is_valid_id(spot):
        raise _Unusable(column, raw_id, "a bay id must match [a-z0-9][a-z0-9-]{0,63}")
    lon, lat = _location(values)
    site, site_name = _site(values)
    name = _get(values, NAME_COLUMNS)[1] or raw_id
    return Bay(spot, site, name, lon, lat, site_name)


def _location(values):
    if "lon" in values and values["lon"][0] == "geometry":  # from GeoJSON, already checked
        return float(values["lon"][1]), float(values["lat"][1])
    if _first(values, LOCATION_COLUMNS) and _get(values, LOCATION_COLUMNS)[1]:
        column, text = _get(values, LOCATION_COLUMNS)
        parts = text.split(",")
        if len(parts) != 2:
            raise _Unusable(column, text, 'expected "latitude, longitude"')
        lat = _number(column, text, parts[0])
        lon = _number(column, text, parts[1])
    else:
        lat_column, lat_text = _get(values, LAT_COLUMNS)
        lon_column, lon_text = _get(values, LON_COLUMNS)
        lat = _number(lat_column, lat_text, lat_text)
        lon = _number(lon_column, lon_text, lon_text)
        column, text = lat_column, lat_text
    _check_position(column, text, lon, lat)
    return lon, lat


def _number(column, shown, text):
    if not text.strip():
        raise _Unusable(column, shown, "empty location")
    try:
        value = float(text)
    except ValueError:
        raise _Unusable(column, shown, "not a number") from None
    if not math.isfinite(value):
        raise _Unusable(column, shown, "not a finite number")
    return value


def _check_position(column, shown, lon, lat):
    if not -90 <= lat <= 90 or not -180 <= lon <= 180:
        raise _Unusable(column, shown, "latitude must be -90..90 and longitude -180..180")
    if lat == 0 and lon == 0:
        raise _Unusable(column, shown, "0, 0 is a missing location, not a bay")


def _geometry_point(geometry):
    """A Point's position, or the mean of the vertices of a line or polygon (a bay's outline)."""
    if not isinstance(geometry, dict):
        raise _Unusable("geometry", _show(geometry), "a bay needs a geometry")
    kind = geometry.get("type")
    depth = {"Point": 0, "LineString": 1, "Polygon": 2, "MultiPolygon": 3}.get(kind)
    if depth is None:
        raise _Unusable("geometry", str(kind), "expected a Point, LineString or (Multi)Polygon")
    vertices = [geometry.get("coordinates")]
    for _ in range(depth):
        vertices = [v for group in vertices if isinstance(group, list) for v in group]
    positions = []
    for vertex in vertices:
        ok = isinstance(vertex, list) and len(vertex) in (2, 3)
        ok = ok and all(isinstance(c, int | float) and not isinstance(c, bool) for c in vertex)
        if not ok or not all(math.isfinite(c) for c in vertex):
            raise _Unusable("geometry", _show(geometry.get("coordinates")), "bad coordinates")
        positions.append(vertex)
    if not positions:
        raise _Unusable("geometry", _show(geometry.get("coordinates")), "no coordinates")
    lon = sum(p[0] for p in positions) / len(positions)
    lat = sum(p[1] for p in positions) / len(positions)
    _check_position("geometry", _show(geometry.get("coordinates")), lon, lat)
    return lon, lat


def _show(value):
    text = json.dumps(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _site(values):
    """(site id, site name) by the rule of the module docstring."""
    column, explicit = _get(values, SITE_COLUMNS)
    site_name = _get(values, SITE_NAME_COLUMNS)[1]
    if explicit:
        site = explicit.lower()
        if not is_valid_id(site):
            raise _Unusable(column, explicit, "a site id must match [a-z0-9][a-z0-9-]{0,63}")
        return site, site_name or explicit
    column, zone = _get(values, ZONE_COLUMNS)
    if zone:
        site = "zone-" + _slug(zone)
        if not is_valid_id(site):
            raise _Unusable(column, zone, "a zone must give an id of [a-z0-9-], at most 59 long")
        return site, site_name or f"Zone {zone}"
    column, street = _get(values, STREET_COLUMNS)
    if street:
        site = _slug(street)[:64].strip("-")
        if not is_valid_id(site):
            raise _Unusable(column, street, "no letters or digits to name a site with")
        return site, site_name or street
    zone_column = _get(values, ZONE_COLUMNS)[0]
    raise _Unusable(zone_column, zone, "no site, zone or street: the bay belongs to no site")


def _slug(text):
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    words = "".join(c if c.isalnum() else " " for c in ascii_text.lower()).split()
    return "-".join(words)


def _form_sites(inventory):
    members = {}
    for bay in inventory.bays.values():
        members.setdefault(bay.site, []).append(bay)
    for site, bays in members.items():
        lon = sum(b.lon for b in bays) / len(bays)
        lat = sum(b.lat for b in bays) / len(bays)
        name = next((b.site_name for b in bays if b.site_name), site)  # the first one given
        inventory.sites[site] = Site(site, name, round(lon, 7), round(lat, 7))


# -- parking.db ---------------------------------------------------------------------------------

SCHEMA = (
    "CREATE TABLE IF NOT EXISTS bays (id TEXT PRIMARY KEY, site TEXT NOT NULL, name TEXT NOT NULL, "
    "lon REAL NOT NULL, lat REAL NOT NULL)",
    "CREATE TABLE IF NOT EXISTS sites (id TEXT PRIMARY KEY, name TEXT NOT NULL, "
    "lon REAL NOT NULL, lat REAL NOT NULL)",
    # what the gateway learnt: kept across restarts (edge/parking.py)
    "CREATE TABLE IF NOT EXISTS spot_state (spot TEXT PRIMARY KEY, sensor TEXT, occupied INTEGER, "
    "reported REAL, closed_reason TEXT, status TEXT NOT NULL, modified REAL NOT NULL)",
    "CREATE TABLE IF NOT EXISTS site_state (site TEXT PRIMARY KEY, available INTEGER NOT NULL, "
    "occupied INTEGER NOT NULL, modified REAL NOT NULL)",
)
BUSY_TIMEOUT_S = 10.0  # the gateway and the CLI may use the database at the same time


def connect(db_path) -> sqlite3.Connection:
    """parking.db, created if missing, in autocommit mode (transactions are explicit)."""
    db_path = Path(db_path)
    try:
        db_path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(db_path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        for statement in SCHEMA:
            db.execute(statement)
    except (OSError, sqlite3.Error) as e:
        raise InventoryError(f"{db_path}: cannot open: {e}") from None
    return db


def save(db_path, inventory: Inventory, required=()) -> None:
    """Replaces the inventory in one transaction: a failure leaves the previous one. `required`
    are (spot, who needs it) pairs, e.g. the configured sensors' spots, that must stay."""
    missing = [(spot, who) for spot, who in required if spot not in inventory.bays]
    if missing:
        spot, who = missing[0]
        raise InventoryError(
            f"bay {spot!r} ({who}) is not in the new inventory"
            + (f" (nor {len(missing) - 1} other configured bay(s))" if len(missing) > 1 else "")
            + "; nothing imported"
        )
    db = connect(db_path)
    try:
        with db:
            db.execute("BEGIN IMMEDIATE")
            db.execute("DELETE FROM bays")
            db.execute("DELETE FROM sites")
            db.executemany(
                "INSERT INTO bays VALUES (?, ?, ?, ?, ?)",
                [(b.id, b.site, b.name, b.lon, b.lat) for b in inventory.bays.values()],
            )
            db.executemany(
                "INSERT INTO sites VALUES (?, ?, ?, ?)",
                [(s.id, s.name, s.lon, s.lat) for s in inventory.sites.values()],
            )
            # what the gateway learnt about bays that are gone means nothing any more
            db.execute("DELETE FROM spot_state WHERE spot NOT IN (SELECT id FROM bays)")
            db.execute("DELETE FROM site_state WHERE site NOT IN (SELECT id FROM sites)")
    except sqlite3.Error as e:
        raise InventoryError(f"{db_path}: import failed, nothing changed: {e}") from None
    finally:
        db.close()


def load(db: sqlite3.Connection) -> tuple[dict[str, Bay], dict[str, Site]]:
    bays = {row[0]: Bay(*row) for row in db.execute("SELECT id, site, name, lon, lat FROM bays")}
    sites = {row[0]: Site(*row) for row in db.execute("SELECT id, name, lon, lat FROM sites")}
    return bays, sites


def known_spots(db_path) -> set[str] | None:
    """The bay ids in parking.db, or None when there is no inventory yet. Read-only."""
    db_path = Path(db_path)
    if not db_path.exists():
        return None
    try:
        db = sqlite3.connect(f"{db_path.resolve().as_uri()}?mode=ro", uri=True)
        try:
            tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
            if "bays" not in tables:
                return None
            return {row[0] for row in db.execute("SELECT id FROM bays")} or None
        finally:
            db.close()
    except sqlite3.Error as e:
        raise InventoryError(f"{db_path}: cannot read: {e}") from None
