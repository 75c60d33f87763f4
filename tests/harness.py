"""Real parts for gateway tests: the gateway as its own process, and a city subscriber."""

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from luciole.protocols import senml

LUCIOLE = str(Path(sys.executable).parent / "luciole")


def gateway_config(tmp_path, broker, serial_paths=(), extra="", **gateway):
    lines = [
        "[gateway]",
        'id = "gw-test"',
        'site = "issy"',
        f'data_dir = "{tmp_path / "gw-data"}"',
        'http_listen = "127.0.0.1:0"',
        *(f"{k} = {v!r}".replace("'", '"') for k, v in gateway.items()),
        "[broker]",
        f'host = "{broker.host}"',
        f"port = {broker.port}",
        "reconnect_min_s = 0.1",
        "reconnect_max_s = 0.5",
    ]
    for path in serial_paths:
        lines += ["[[serial]]", f'port = "{path}"']
    path = tmp_path / "gateway.toml"
    path.write_text("\n".join(lines) + "\n" + extra)
    return path


class GatewayProcess:
    def __init__(self, config_path, log_path):
        self.config_path, self.log_path = config_path, log_path
        self.process = None

    def start(self):
        self.process = subprocess.Popen(
            [LUCIOLE, "gateway", "--config", str(self.config_path)],
            stdout=subprocess.DEVNULL,
            stderr=open(self.log_path, "ab"),  # noqa: SIM115
        )
        return self

    def kill(self):
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()

    def log(self):
        return Path(self.log_path).read_text() if os.path.exists(self.log_path) else ""


@dataclass
class Received:
    topic: str
    device: str
    seq: int
    retained: bool
    payload: bytes
    user_seq: str | None


@dataclass
class Subscriber:
    """A city integrator: a persistent MQTT 5 session that reconnects for ever."""

    broker: object
    topic_filter: str
    client_id: str = "city-consumer"
    messages: list = field(default_factory=list)
    connected: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self):
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 3600
        client = aiomqtt.Client(
            self.broker.host,
            self.broker.port,
            identifier=self.client_id,
            protocol=aiomqtt.ProtocolVersion.V5,
            clean_start=False,
            properties=props,
            timeout=5,
        )
        while True:
            try:
                async with client:
                    await client.subscribe(self.topic_filter, qos=1)
                    self.connected.set()
                    async for message in client.messages:
                        self.messages.append(self._received(message))
            except aiomqtt.MqttError:
                self.connected.clear()
                await asyncio.sleep(0.1)

    def _received(self, message):
        topic = str(message.topic)
        user = dict(getattr(message.properties, "UserProperty", []) or [])
        seq = device = None
        if topic.endswith(("/telemetry", "/events")):
            records = senml.resolve(senml.decode_cbor(message.payload), 0)
            device = topic.split("/")[-2]
            seq = next(int(r["v"]) for r in records if r["n"].endswith(":seq"))
        return Received(topic, device, seq, message.retain, message.payload, user.get("seq"))

    @contextlib.asynccontextmanager
    async def running(self):
        task = asyncio.create_task(self.run())
        await asyncio.wait_for(self.connected.wait(), 10)
        try:
            yield self
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def wait_until(predicate, timeout_s, what="condition"):
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        await asyncio.sleep(0.05)
