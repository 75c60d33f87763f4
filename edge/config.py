"""The gateway's configuration: one TOML file, validated completely before anything starts.

A bad file raises ConfigError with one line naming the file, the key and what is wrong. Secrets
(broker password, device keys) may be given inline, as `*_file` (read from a file) or as `*_env`
(read from an environment variable). docs/gateway.example.toml documents every key.
"""

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from luciole.protocols.topics import DEFAULT_PREFIX, is_valid_id


class ConfigError(Exception):
    pass


@dataclass(frozen=True)
class BrokerConfig:
    host: str = "127.0.0.1"
    port: int = 1883
    protocol: str = "mqtt5"
    client_id: str = ""
    username: str | None = None
    password: str | None = None
    keepalive_s: int = 30
    session_expiry_s: int = 86_400
    inflight: int = 64
    reconnect_min_s: float = 0.5
    reconnect_max_s: float = 30.0
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None

    @property
    def tls(self) -> bool:
        return self.ca_file is not None


@dataclass(frozen=True)
class SerialPortConfig:
    port: str
    baud: int = 115_200
    silent_after_s: float = 60.0


@dataclass(frozen=True)
class BleConfig:
    enabled: bool = False
    adapter: str = "hci0"
    passive: bool = True
    watchdog_s: float = 120.0
    silent_after_s: float = 600.0


@dataclass(frozen=True)
class ParkingConfig:
    enabled: bool = False
    unknown_after_s: float = 600.0


LINE_CODES = ("manchester", "4b6b")


@dataclass(frozen=True)
class MuseumConfig:
    """How the luminaires light every exhibit this gateway serves (docs/lifi-content.md)."""

    chip_rate_hz: int = 1_000_000
    line_code: str = "manchester"
    level_pct: int = 50  # light level; 50 is the line codes' own average, no compensation


@dataclass(frozen=True)
class DeviceConfig:
    id: str
    kind: str
    mac: str | None = None
    key: bytes | None = None
    spot: str | None = None  # the parking bay a parking sensor watches
    exhibit: str | None = None  # the museum exhibit a luminaire broadcasts


@dataclass(frozen=True)
class GatewayConfig:
    id: str
    site: str
    path: Path
    topic_prefix: str = DEFAULT_PREFIX
    data_dir: Path = Path("/var/lib/luciole")
    telemetry_format: str = "cbor"
    log_format: str = "text"
    log_level: str = "info"
    http_listen: str = "127.0.0.1:9108"
    max_messages: int = 1_000_000
    broker: BrokerConfig = field(default_factory=BrokerConfig)
    serial: tuple[SerialPortConfig, ...] = ()
    ble: BleConfig = field(default_factory=BleConfig)
    parking: ParkingConfig = field(default_factory=ParkingConfig)
    museum: MuseumConfig = field(default_factory=MuseumConfig)
    devices: tuple[DeviceConfig, ...] = ()

    @property
    def parking_db(self) -> Path:
        return self.data_dir / "parking.db"


DEVICE_KINDS = ("parking-sensor", "luminaire", "beacon")


class _Section:
    """Reads typed keys from one TOML table, naming the key in every error."""

    def __init__(self, path, name, table):
        self.path, self.name, self.table = path, name, dict(table)

    def fail(self, key, problem):
        where = f"{self.name}.{key}" if self.name else key
        raise ConfigError(f"{self.path}: {where}: {problem}")

    def get(self, key, kind, default, check=None, problem=""):
        if key not in self.table:
            return default
        value = self.table.pop(key)
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            self.fail(key, f"expected {_KIND_NAMES[kind]}, got {value!r}")
        if check is not None and not check(value):
            self.fail(key, f"{problem}, got {value!r}")
        return value

    def secret(self, key, default=None):
        """`key`, `key_file` or `key_env`: at most one of them."""
        given = [k for k in (key, f"{key}_file", f"{key}_env") if k in self.table]
        if len(given) > 1:
            self.fail(given[1], f"give only one of {', '.join(given)}")
        if not given:
            return default
        value = self.get(given[0], str, None)
        if given[0].endswith("_file"):
            try:
                return self.file(value).read_text().strip()
            except OSError as e:
                self.fail(given[0], f"cannot read {value}: {e.strerror}")
        if given[0].endswith("_env"):
            if value not in os.environ:
                self.fail(given[0], f"environment variable {value} is not set")
            return os.environ[value]
        return value

    def file(self, value):
        """A path from the config: relative ones are relative to the config file's folder."""
        return self.path.parent / Path(value).expanduser()

    def get_file(self, key):
        value = self.get(key, str, None)
        return None if value is None else self.file(value)

    def done(self):
        for key in self.table:
            self.fail(key, "unknown key")


_KIND_NAMES = {str: "a string", int: "an integer", float: "a number", bool: "true or false"}


def _one_of(*choices):
    return lambda value: value in choices


def _parse_listen(section, key, value):
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        section.fail(key, f"expected HOST:PORT, got {value!r}")
    return value


def _broker(path, table):
    s = _Section(path, "broker", table)
    positive = (lambda v: v > 0, "must be > 0")
    config = BrokerConfig(
        host=s.get("host", str, "127.0.0.1", bool, "must not be empty"),
        port=s.get("port", int, 1883, lambda p: 0 < p < 65536, "must be from 1 to 65535"),
        protocol=s.get(
            "protocol", str, "mqtt5", _one_of("mqtt5", "mqtt3.1.1"), "must be mqtt5 or mqtt3.1.1"
        ),
        client_id=s.get("client_id", str, ""),
        username=s.get("username", str, None),
        password=s.secret("password"),
        keepalive_s=s.get("keepalive_s", int, 30, *positive),
        session_expiry_s=s.get("session_expiry_s", int, 86_400, lambda v: v >= 0, "must be >= 0"),
        inflight=s.get("inflight", int, 64, lambda v: 0 < v <= 65535, "must be 1..65535"),
        reconnect_min_s=s.get("reconnect_min_s", float, 0.5, *positive),
        reconnect_max_s=s.get("reconnect_max_s", float, 30.0, *positive),
        ca_file=s.get_file("ca_file"),
        cert_file=s.get_file("cert_file"),
        key_file=s.get_file("key_file"),
    )
    s.done()
    if config.reconnect_min_s > config.reconnect_max_s:
        s.fail("reconnect_min_s", f"must not exceed reconnect_max_s ({config.reconnect_max_s})")
    for key in ("ca_file", "cert_file", "key_file"):
        file = getattr(config, key)
        if file is not None and not file.is_file():
            s.fail(key, f"no such file: {file}")
    if (config.cert_file is None) != (config.key_file is None):
        s.fail("cert_file", "cert_file and key_file go together")
    if config.cert_file is not None and config.ca_file is None:
        s.fail("ca_file", "a client certificate needs ca_file (TLS)")
    return config


def _serial(path, index, table):
    s = _Section(path, f"serial[{index}]", table)
    config = SerialPortConfig(
        port=s.get("port", str, None) or s.fail("port", "required: the device path"),
        baud=s.get("baud", int, 115_200, lambda v: v > 0, "must be > 0"),
        silent_after_s=s.get("silent_after_s", float, 60.0, lambda v: v > 0, "must be > 0"),
    )
    s.done()
    return config


def _ble(path, table):
    s = _Section(path, "ble", table)
    config = BleConfig(
        enabled=s.get("enabled", bool, True),
        adapter=s.get("adapter", str, "hci0"),
        passive=s.get("passive", bool, True),
        watchdog_s=s.get("watchdog_s", float, 120.0, lambda v: v > 0, "must be > 0"),
        silent_after_s=s.get("silent_after_s", float, 600.0, lambda v: v > 0, "must be > 0"),
    )
    s.done()
    return config


def _parking(path, table):
    s = _Section(path, "parking", table)
    config = ParkingConfig(
        enabled=s.get("enabled", bool, True),
        unknown_after_s=s.get("unknown_after_s", float, 600.0, lambda v: v > 0, "must be > 0"),
    )
    s.done()
    return config


def _museum(path, table):
    s = _Section(path, "museum", table)
    config = MuseumConfig(
        chip_rate_hz=s.get(
            "chip_rate_hz",
            int,
            1_000_000,
            lambda v: 10_000 <= v <= 10_000_000,
            "must be from 10000 to 10000000",
        ),
        line_code=s.get(
            "line_code", str, "manchester", _one_of(*LINE_CODES), "must be manchester or 4b6b"
        ),
        level_pct=s.get("level_pct", int, 50, lambda v: 10 <= v <= 90, "must be from 10 to 90"),
    )
    s.done()
    return config


def _check_spots(config, in_inventory):
    """No bay has two sensors and, with in_inventory, each sensor's bay is in the inventory."""
    assigned = [(i, d) for i, d in enumerate(config.devices) if d.spot is not None]
    if not assigned:
        return
    where = f"{config.path}: devices[{assigned[0][0]}].spot"
    if not config.parking.enabled:
        raise ConfigError(f"{where}: a bay is assigned but parking is off: add a [parking] table")
    by_spot = {}
    for i, device in assigned:
        if device.spot in by_spot:
            raise ConfigError(
                f"{config.path}: devices[{i}].spot: bay {device.spot!r} already has sensor "
                f"{by_spot[device.spot]!r}"
            )
        by_spot[device.spot] = device.id
    if not in_inventory:
        return
    from .parking_inventory import InventoryError, known_spots  # only when bays are assigned

    try:
        known = known_spots(config.parking_db)
    except InventoryError as e:
        raise ConfigError(f"{where}: {e}") from None
    for i, device in assigned:
        if known is None or device.spot not in known:
            inventory = "is empty" if known is None else f"has {len(known)} bays"
            raise ConfigError(
                f"{config.path}: devices[{i}].spot: no bay {device.spot!r} in the parking "
                f"inventory ({config.parking_db} {inventory}); import it with "
                f"`luciole parking import FILE --config {config.path}`"
            )


def _mac(value):
    parts = value.split(":")
    return len(parts) == 6 and all(len(p) == 2 and _is_hex(p) for p in parts)


def _is_hex(text):
    try:
        bytes.fromhex(text)
    except ValueError:
        return False
    return True


def _device(path, index, table):
    s = _Section(path, f"devices[{index}]", table)
    device_id = s.get("id", str, None, is_valid_id, "must match [a-z0-9][a-z0-9-]{0,63}")
    if device_id is None:
        s.fail("id", "required")
    kind = s.get(
        "kind", str, None, _one_of(*DEVICE_KINDS), "must be one of " + ", ".join(DEVICE_KINDS)
    )
    if kind is None:
        s.fail("kind", "required: one of " + ", ".join(DEVICE_KINDS))
    mac = s.get("mac", str, None, _mac, "expected a MAC address like 54:48:E6:8F:80:A5")
    key = s.secret("key")
    if key is not None and not (len(key) == 32 and _is_hex(key)):
        s.fail("key", "expected 32 hexadecimal digits (a 16-byte AES key)")
    spot = s.get("spot", str, None, is_valid_id, "a bay id must match [a-z0-9][a-z0-9-]{0,63}")
    if spot is not None and kind != "parking-sensor":
        s.fail("spot", f"only a parking-sensor watches a bay, not a {kind}")
    exhibit = s.get(
        "exhibit", str, None, is_valid_id, "an exhibit id must match [a-z0-9][a-z0-9-]{0,63}"
    )
    if exhibit is not None and kind != "luminaire":
        s.fail("exhibit", f"only a luminaire broadcasts an exhibit, not a {kind}")
    s.done()
    return DeviceConfig(
        id=device_id,
        kind=kind,
        mac=mac.upper() if mac else None,
        key=bytes.fromhex(key) if key else None,
        spot=spot,
        exhibit=exhibit,
    )


def load(path, check_spots=True) -> GatewayConfig:
    """The whole file, checked. With check_spots (the default), the bays that devices[].spot
    names must be in the parking inventory (data_dir/parking.db, read-only); `luciole parking
    import` checks the new inventory instead."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text())
    except OSError as e:
        raise ConfigError(f"{path}: cannot read: {e.strerror}") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML: {e}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None

    top = _Section(path, "", raw)
    tables = {}
    for name, kind in (
        ("gateway", dict),
        ("broker", dict),
        ("ble", dict),
        ("parking", dict),
        ("museum", dict),
        ("serial", list),
        ("devices", list),
    ):
        tables[name] = top.get(name, kind, kind(), None)
    top.done()
    for name in ("serial", "devices"):
        for i, item in enumerate(tables[name]):
            if not isinstance(item, dict):
                raise ConfigError(f"{path}: {name}[{i}]: expected a table ([[{name}]])")

    g = _Section(path, "gateway", tables["gateway"])
    gateway_id = g.get("id", str, None, is_valid_id, "must match [a-z0-9][a-z0-9-]{0,63}")
    if gateway_id is None:
        g.fail("id", "required: this gateway's id, e.g. gw-mairie")
    config = GatewayConfig(
        id=gateway_id,
        site=g.get("site", str, "issy", is_valid_id, "must match [a-z0-9][a-z0-9-]{0,63}"),
        path=path,
        topic_prefix=g.get(
            "topic_prefix",
            str,
            DEFAULT_PREFIX,
            lambda p: all(p.split("/")) and "+" not in p and "#" not in p,
            "must be MQTT topic levels without wildcards",
        ),
        data_dir=Path(g.get("data_dir", str, "/var/lib/luciole")),
        telemetry_format=g.get(
            "telemetry_format", str, "cbor", _one_of("cbor", "json"), "must be cbor or json"
        ),
        log_format=g.get(
            "log_format", str, "text", _one_of("text", "json"), "must be text or json"
        ),
        log_level=g.get(
            "log_level",
            str,
            "info",
            _one_of("debug", "info", "warning", "error"),
            "must be debug, info, warning or error",
        ),
        http_listen=_parse_listen(g, "http_listen", g.get("http_listen", str, "127.0.0.1:9108")),
        max_messages=g.get("max_messages", int, 1_000_000, lambda v: v > 0, "must be > 0"),
        broker=_broker(path, tables["broker"]),
        serial=tuple(_serial(path, i, t) for i, t in enumerate(tables["serial"])),
        # a [ble] table, even empty, turns BLE on unless it says enabled = false
        ble=_ble(path, tables["ble"]) if "ble" in raw else BleConfig(),
        # likewise a [parking] table turns the parking service on
        parking=_parking(path, tables["parking"]) if "parking" in raw else ParkingConfig(),
        museum=_museum(path, tables["museum"]),
        devices=tuple(_device(path, i, t) for i, t in enumerate(tables["devices"])),
    )
    g.done()
    seen = set()
    for i, device in enumerate(config.devices):
        if device.id in seen:
            raise ConfigError(f"{path}: devices[{i}].id: {device.id!r} is listed twice")
        seen.add(device.id)
    _check_spots(config, check_spots)
    return config
