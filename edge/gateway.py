"""The gateway: southbound links in, the durable outbox between, the city broker out."""

import asyncio
import contextlib
import functools
import json
import logging
import math
import time
from concurrent.futures import ThreadPoolExecutor
from importlib.metadata import version

from luciole.protocols import link
from luciole.protocols.errors import DecodeError
from luciole.protocols.topics import Topics, is_valid_id

from .ble_scanner import BleScanner
from .commands import CommandFailed, Commands
from .config import GatewayConfig
from .intake import Intake, ReadingPacks
from .metrics import Metrics, serve
from .museum import Museum
from .parking import ParkingService
from .registry import Device, Registry
from .serial_port import SerialPort
from .store import Message, Outbox
from .uplink import Uplink

log = logging.getLogger("luciole.gateway")

STATUS_EVERY_S = 10.0
SAVE_REGISTRY_EVERY_S = 30.0


class Gateway:
    def __init__(self, config: GatewayConfig):
        self.config = config
        self.id = config.id
        self.topics = Topics(config.site, config.topic_prefix)
        self.metrics = Metrics()
        config.data_dir.mkdir(parents=True, exist_ok=True)
        self._db = ThreadPoolExecutor(1, thread_name_prefix="luciole-db")
        self.outbox = Outbox(config.data_dir / "outbox.db", config.max_messages)
        self.intake = Intake(self.outbox, self._db)
        self.registry = Registry(config.data_dir / "registry.db", config.devices)
        self.uplink = Uplink(
            config.broker,
            config.broker.client_id or f"luciole-{config.id}",
            self.intake,
            self.metrics,
            self.topics.build("gateway_status", config.id),
        )
        self.ports = [SerialPort(port, self) for port in config.serial]
        self.parking = None  # bay states from parking sensors, when [parking] is configured
        if config.parking.enabled:
            self.parking = ParkingService(
                config.parking_db,
                config.site,
                self.topics,
                {d.id: d.spot for d in config.devices if d.spot is not None},
                config.parking.unknown_after_s,
                self.uplink.retain,
            )
        self.commands = Commands(self)
        if self.parking is not None:
            for name, handler in self.parking.commands().items():
                self.commands.handle(name, handler)
        # exhibit content onto the luminaires, when some luminaire has an exhibit
        self.museum = Museum(self) if any(d.exhibit for d in config.devices) else None
        self.uplink.on_connect = self._connected
        self.uplink.on_message = self._message
        self.ble = BleScanner(config.ble, self) if config.ble.enabled else None
        self.since = time.time()
        self.version = version("luciole")
        self._background: set[asyncio.Task] = set()
        self._probed: dict[str, float] = {}  # device id -> when it was last probed (monotonic)
        self.metrics.queue_depth.set(self.outbox.depth)
        self.metrics.dropped.set(self.outbox.dropped)
        self._packs = ReadingPacks(config.telemetry_format)
        self._topic = functools.lru_cache(maxsize=4096)(self.topics.build)  # ids checked once

    async def run(self):
        server = await serve(self.config.http_listen, self.metrics, self.health)
        jobs = [self.uplink.run(), self._keep_status(), self._watch_availability()]
        jobs += [port.run() for port in self.ports]
        jobs += [self.ble.run()] if self.ble is not None else []
        jobs += [self.parking.run()] if self.parking is not None else []
        try:
            async with asyncio.TaskGroup() as group:
                for job in jobs:
                    group.create_task(job)
        finally:
            server.close()
            self.registry.close()
            if self.parking is not None:
                self.parking.close_db()
            self._db.shutdown(wait=True)
            self.outbox.close()

    async def _connected(self, client):
        await self.uplink.retain(*self._status("online"))  # the birth, with today's figures
        await self.commands.subscribe(client)
        if self.museum is not None:
            await self.museum.subscribe(client)

    async def _message(self, client, message):
        if self.museum is None or not await self.museum.on_message(message):
            await self.commands.on_message(client, message)

    async def say_offline(self):
        """Before a clean stop: a normal disconnect suppresses the last will, so the retained
        status is set to offline while the connection is still up."""
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.uplink.retain(*self._status("offline")), 2)

    # -- what links call -------------------------------------------------------------------

    async def accept(self, messages: list[Message], link_name: str) -> None:
        await self.intake.accept(messages)
        self.metrics.queue_depth.set(self.outbox.depth)
        self.metrics.dropped.set(self.outbox.dropped)

    def reading(self, device_id, seq, values, time_s, link_name, event=False) -> Message:
        """A reading from a device turned into the SenML message the city receives."""
        device = self.registry.devices.get(device_id) or self.registry.announce(
            device_id, "unknown", link_name, None
        )
        self._heard(device, link_name)
        base_time = time_s if time_s is not None else round(time.time(), 3)
        return Message(
            topic=self._topic("events" if event else "telemetry", device_id),
            payload=self._packs.encode(device_id, seq, values, base_time),
            device=device_id,
            seq=seq,
            content_type=self._packs.content_type,
        )

    def hello(self, hello: dict, link_name: str) -> None:
        device_id = hello.get("id")
        if not isinstance(device_id, str) or not is_valid_id(device_id):
            log.warning("%s: HELLO without a valid id: %r", link_name, hello)
            return
        device = self.registry.announce(
            device_id, str(hello.get("role", "unknown")), link_name, hello.get("fw")
        )
        log.info("%s: %s (%s) says hello", link_name, device_id, device.kind)
        self._heard(device, link_name)
        if self.museum is not None:
            self.museum.hello(device)

    def notice(self, port, event) -> None:
        kind, frame = event
        if self.museum is not None:
            self.museum.notice(port, event)
        if kind == link.DELIVERED:  # the device ACKed our frame: it is there, its window has room
            for device in self._consoles_on(port):
                self._heard(device, port.name)
                self.commands.send_queued(device)
        else:
            log.warning("%s: frame %d of type %d %s", port.name, frame.seq, frame.type, kind)

    def _probe_quiet(self, port):
        """Probes the online devices of an open port not heard for half their silence timeout
        (at most once per half timeout)."""
        half_s = port.config.silent_after_s / 2
        quiet_since = time.time() - half_s
        for device in self._consoles_on(port):
            probed = self._probed.get(device.id, -math.inf)
            if (
                device.online
                and device.last_seen is not None
                and device.last_seen < quiet_since
                and time.monotonic() - probed > half_s
            ):
                self._probed[device.id] = time.monotonic()
                self._spawn(self._probe(port, device))

    def _consoles_on(self, port) -> list[Device]:
        return [d for d in self.registry.devices.values() if d.console == port.name]

    async def _probe(self, port, device):
        """A device that sends nothing of its own (a luminaire) is asked for its `info` before
        it would count as silent: an answer, or the ACK of the command, says it is there."""
        with contextlib.suppress(CommandFailed):
            await self.commands.ask(port, device.id, "info", {})
            self._heard(device, port.name)

    def response(self, frame, port) -> None:
        self._spawn(self._response(frame.body, port))

    async def _response(self, body, port):
        try:
            await self.commands.response(body)
        except DecodeError as e:
            log.warning("%s: bad RESPONSE: %s", port.name, e)

    def port_for(self, device: Device):
        """The serial port a device's commands go to: the one it said HELLO on (a beacon is
        heard over BLE but configured over its console)."""
        name = device.console or device.link
        return next((p for p in self.ports if p.name == name), None)

    # -- state published for the city ------------------------------------------------------

    def _heard(self, device: Device, link_name: str, **fields):
        was_online = device.online
        if self.registry.heard(device, link_name, **fields):
            self._publish_device(device)
            if not was_online:
                self.commands.send_queued(device)

    def _publish_device(self, device: Device):
        topic = self.topics.build("device_status", device.id)
        payload = json.dumps(device.status(self.id), separators=(",", ":")).encode()
        self._spawn(self.uplink.retain(topic, payload))

    def _spawn(self, coro):
        task = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def status_payload(self, state: str) -> bytes:
        status = {
            "state": state,
            "version": self.version,
            "since": round(self.since, 3),
            "backlog": self.outbox.depth,
            "dropped": self.outbox.dropped,
        }
        return json.dumps(status, separators=(",", ":")).encode()

    def _status(self, state: str):
        return self.topics.build("gateway_status", self.id), self.status_payload(state)

    async def _keep_status(self):
        while True:
            await self.uplink.retain(*self._status("online"))
            await asyncio.sleep(STATUS_EVERY_S)

    async def _watch_availability(self):
        last_save = time.monotonic()
        while True:
            await asyncio.sleep(1.0)
            await self.commands.expire()
            for port in self.ports:
                if port.writer is not None:
                    self._probe_quiet(port)
                for device in self.registry.silent(port.name, port.config.silent_after_s):
                    log.warning("%s: %s is silent, now offline", port.name, device.id)
                    self._publish_device(device)
            if self.ble is not None:
                for device in self.registry.silent("ble", self.config.ble.silent_after_s):
                    log.warning("ble: %s is silent, now offline", device.id)
                    self._publish_device(device)
            if time.monotonic() - last_save > SAVE_REGISTRY_EVERY_S:
                self.registry.save()  # a few rows: not worth a thread hop
                last_save = time.monotonic()

    def health(self):
        ok = self.uplink.connected.is_set()
        detail = {
            "broker": "connected" if ok else "disconnected",
            "backlog": self.outbox.depth,
            "ports": {p.config.port: p.writer is not None for p in self.ports},
        }
        return ok, json.dumps(detail).encode()
