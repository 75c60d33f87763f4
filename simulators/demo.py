"""`luciole demo`: a small city on this machine, with no device on the desk.

A real Mosquitto on a free local port, the real gateway (`luciole gateway`) as its own process,
and simulated parking sensors on pseudo-terminals sending readings over the device link. It
prints what a city integrator subscribed to the broker sees, then a summary. Later issues add the
MicroPython firmware, the street, the BLE air and the Li-Fi museum to it.
"""

import asyncio
import json
import random
import shutil
import tempfile
import time
from pathlib import Path

import aiomqtt

from luciole.protocols import senml

from .gateway_process import GatewayProcess, write_config
from .mosquitto import Mosquitto, free_port
from .serial_device import SerialDevice


def demo_command(subparsers):
    parser = subparsers.add_parser(
        "demo",
        help="run a small simulated city: broker, gateway and sensors on this machine",
        description=__doc__,
    )
    parser.add_argument("--seconds", type=float, default=15.0, help="how long (default 15)")
    parser.add_argument("--sensors", type=int, default=3, help="simulated sensors (default 3)")
    parser.set_defaults(handler=lambda args: asyncio.run(run(args.seconds, args.sensors)))


def describe(topic: str, payload: bytes) -> str:
    if topic.endswith(("/telemetry", "/events")):
        records = senml.resolve(senml.decode_cbor(payload), time.time())
        return ", ".join(
            f"{r['n'].split(':', 1)[1]}={r.get('v', r.get('vb', r.get('vs')))}{r.get('u', '')}"
            for r in records
        )
    return json.dumps(json.loads(payload))


async def sensor(device: SerialDevice, seconds: float, rng: random.Random):
    occupied = False
    deadline = time.monotonic() + seconds
    seq = 0
    while time.monotonic() < deadline:
        if rng.random() < 0.3:
            occupied = not occupied
        values = (("occupied", occupied, None), ("battery", rng.randint(80, 100), "%EL"))
        await device.send_readings(1, first_seq=seq, values=values)
        seq += 1
        await asyncio.sleep(rng.uniform(0.5, 2.0))
    return seq


async def run(seconds: float, sensors: int) -> int:
    workdir = Path(tempfile.mkdtemp(prefix="luciole-demo-"))
    rng = random.Random(42)
    broker = Mosquitto(workdir / "broker").start()
    print(f"broker      mosquitto on {broker.host}:{broker.port}")
    devices = [SerialDevice(f"ps-{i + 1:04d}", workdir / f"ttyPS{i + 1}") for i in range(sensors)]
    http_port = free_port()
    config = write_config(
        workdir / "gateway.toml",
        broker,
        [d.path for d in devices],
        silent_after_s=5,
        id="gw-demo",
        http_listen=f"127.0.0.1:{http_port}",
    )
    gateway = GatewayProcess(config, workdir / "gateway.log").start()
    print(f"gateway     gw-demo, config {config}, metrics http://127.0.0.1:{http_port}/metrics")
    for d in devices:
        print(f"sensor      {d.device_id} on {d.path}")
    print(f"\nwhat the city sees on luciole/v1/issy/# for {seconds:.0f} s:\n")
    received = 0
    try:
        async with aiomqtt.Client(broker.host, broker.port) as city:
            await city.subscribe("luciole/v1/issy/#", qos=1)
            senders = asyncio.gather(*(sensor(d, seconds, rng) for d in devices))
            start = time.monotonic()

            async def show():
                nonlocal received
                async for message in city.messages:
                    received += 1
                    topic = str(message.topic).removeprefix("luciole/v1/issy/")
                    at = time.monotonic() - start
                    print(
                        f"{at:6.1f} s  {topic:32} {describe(str(message.topic), message.payload)}"
                    )

            viewer = asyncio.create_task(show())
            sent = sum(await senders)
            await asyncio.sleep(1.0)
            viewer.cancel()
        print(f"\n{sent} readings sent by {sensors} sensors, {received} messages seen by the city")
        print(f"gateway log: {workdir / 'gateway.log'}")
        return 0
    finally:
        gateway.stop()
        for d in devices:
            d.unplug()
        broker.stop()
        shutil.rmtree(workdir / "broker", ignore_errors=True)
