"""`luciole gateway --config FILE`: run the gateway, or only check its configuration."""

import asyncio
import json
import logging
import signal
import sqlite3
import sys

from . import config as config_module
from .cli import UsageError


class JsonFormatter(logging.Formatter):
    def format(self, record):
        entry = {
            "time": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def gateway_command(subparsers):
    parser = subparsers.add_parser(
        "gateway",
        help="run the edge gateway",
        description="Bridges serial and BLE devices to the city's MQTT broker, buffering on disk "
        "so nothing is lost while the broker is away. See docs/gateway.example.toml.",
    )
    parser.add_argument("--config", required=True, metavar="FILE", help="the gateway's TOML file")
    parser.add_argument(
        "--check-config", action="store_true", help="validate the file, print a summary and exit"
    )
    parser.set_defaults(handler=run)


def setup_logging(fmt: str, level: str):
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)


def run(args) -> int:
    try:
        config = config_module.load(args.config)
    except config_module.ConfigError as e:
        raise UsageError(str(e)) from None
    if args.check_config:
        b = config.broker
        print(
            f"{config.path}: ok: gateway {config.id} on site {config.site}, broker "
            f"{b.host}:{b.port} ({b.protocol}{', TLS' if b.tls else ''}), "
            f"{len(config.serial)} serial port(s), BLE {'on' if config.ble.enabled else 'off'}, "
            f"{len(config.devices)} device(s)"
        )
        return 0
    setup_logging(config.log_format, config.log_level)
    from .gateway import Gateway  # only now: --check-config stays fast

    async def main():
        gateway = Gateway(config)
        task = asyncio.create_task(gateway.run())

        async def stop():
            await gateway.say_offline()
            task.cancel()

        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, lambda: asyncio.ensure_future(stop()))
        try:
            await task
        except asyncio.CancelledError:
            logging.getLogger("luciole.gateway").info("stopped")

    try:
        asyncio.run(main())
    except (OSError, sqlite3.Error, ExceptionGroup) as e:
        cause = e
        while isinstance(cause, ExceptionGroup):  # the gateway's task group wraps what failed
            cause = cause.exceptions[0]
        if isinstance(cause, sqlite3.Error):  # e.g. a full disk; unacknowledged readings are resent
            raise UsageError(f"storage in {config.data_dir} failed: {cause}") from None
        if isinstance(cause, OSError):  # e.g. the metrics port is taken, data_dir not writable
            raise UsageError(str(cause)) from None
        raise
    return 0
