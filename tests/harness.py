"""Real parts for gateway tests: the gateway as its own process, and a city subscriber."""

import asyncio
import contextlib
import json
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from luciole.protocols import senml
from luciole.simulators.gateway_process import LUCIOLE, GatewayProcess, write_config

__all__ = ["LUCIOLE", "GatewayProcess", "gateway_config"]


def gateway_config(tmp_path, broker, serial_paths=(), extra="", **options):
    """tmp_path/gateway.toml for a test gateway (gw-test on site issy); `extra` is appended TOML
    (e.g. [ble] and [[devices]] tables)."""
    path = write_config(tmp_path / "gateway.toml", broker, serial_paths, **options)
    path.write_text(path.read_text() + extra)
    return path


@dataclass
class Received:
    topic: str
    device: str
    seq: int
    retained: bool
    payload: bytes
    user_seq: str | None


class Subscriber:
    """A city integrator in its own process: a persistent MQTT 5 session that reconnects for
    ever and reads as fast as the broker sends, so the test process never slows the broker."""

    def __init__(self, broker, topic_filter, client_id="city-consumer"):
        self.broker, self.topic_filter, self.client_id = broker, topic_filter, client_id
        self.out = Path(broker.workdir) / f"{client_id}.tsv"
        self.messages: list[Received] = []

    @contextlib.asynccontextmanager
    async def running(self):
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            str(Path(__file__).parent / "city_consumer.py"),
            self.broker.host,
            str(self.broker.port),
            self.client_id,
            self.topic_filter,
            str(self.out),
            stdout=asyncio.subprocess.PIPE,
        )
        first = await asyncio.wait_for(process.stdout.readline(), 10)
        assert first == b"SUBSCRIBED\n", first
        reader = asyncio.create_task(self._read())
        self.broker.save()  # the subscription survives a broker crash
        try:
            yield self
        finally:
            process.kill()
            await process.wait()
            reader.cancel()

    async def _read(self):
        with open(self.out, "rb") as lines:
            while True:
                line = lines.readline()
                if not line.endswith(b"\n"):  # nothing new yet, or a line half-written
                    lines.seek(-len(line), 1)
                    await asyncio.sleep(0.02)
                    continue
                topic, user_seq, retain, payload = line.decode().rstrip("\n").split("\t")
                self.messages.append(received(topic, user_seq or None, retain == "1", payload))


def received(topic, user_seq, retained, payload_hex):
    payload = bytes.fromhex(payload_hex)
    seq = device = None
    if topic.endswith(("/telemetry", "/events")):
        records = senml.resolve(senml.decode_cbor(payload), 0)
        device = topic.split("/")[-2]
        seq = next(int(r["v"]) for r in records if r["n"].endswith(":seq"))
    return Received(topic, device, seq, retained, payload, user_seq)


async def http_get(port, path):
    """(status, body) of GET path on the gateway's local HTTP port."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.0\r\n\r\n".encode())
    head, _, body = (await reader.read()).partition(b"\r\n\r\n")
    writer.close()
    return int(head.split()[1]), body


async def scrape(port):
    """/metrics as {'name{label="value",...}': value}."""
    _, body = await http_get(port, "/metrics")
    values = {}
    for line in body.decode().splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            values[name] = float(value)
    return values


def sample(name, **labels):
    """The key of one sample in scrape()'s result; labels in the order the metric declares."""
    inner = ",".join(f'{k}="{v}"' for k, v in labels.items())
    return f"{name}{{{inner}}}" if labels else name


async def wait_until(predicate, timeout_s, what="condition"):
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def operator(broker):
    """A city operator's client that sends commands and waits for their answers."""
    async with aiomqtt.Client(
        broker.host, broker.port, protocol=aiomqtt.ProtocolVersion.V5
    ) as client:
        inbox = f"ops/replies/{uuid.uuid4().hex}"
        await client.subscribe(inbox, qos=1)
        waiting = {}  # correlation data -> the future of its ask: asks may run concurrently

        async def replies():
            async for message in client.messages:
                answer = waiting.pop(message.properties.CorrelationData, None)
                if answer is not None and not answer.done():
                    answer.set_result(json.loads(message.payload))

        async def ask(target, command, payload=b"", timeout_s=10):
            correlation = uuid.uuid4().bytes
            waiting[correlation] = answer = asyncio.get_running_loop().create_future()
            props = Properties(PacketTypes.PUBLISH)
            props.ResponseTopic, props.CorrelationData = inbox, correlation
            try:
                await client.publish(
                    f"luciole/v1/issy/cmd/{target}/{command}", payload, qos=1, properties=props
                )
                async with asyncio.timeout(timeout_s):
                    return await answer
            finally:
                waiting.pop(correlation, None)

        reader = asyncio.create_task(replies())
        try:
            yield ask
        finally:
            reader.cancel()
