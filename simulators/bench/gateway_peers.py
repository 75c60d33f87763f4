"""The gateway bench's other processes, each in its own interpreter so no GIL is shared with the
gateway or with the process that measures:

  python -m luciole.simulators.bench.gateway_peers devices DIR N
      N serial devices on ptys DIR/ttyLUC0..; prints READY, then obeys lines on stdin:
      `hello` (waits until the gateway greeted every device), `send NDEV COUNT FIRST_SEQ RATE`
      (devices 0..NDEV-1 each send COUNT readings from FIRST_SEQ, RATE per second each, 0 for as
      fast as the link's window allows; prints `START wall` then `DONE wall` once all are
      acknowledged), `quit`. Each reading carries its creation time (wall clock) as "t".
  python -m luciole.simulators.bench.gateway_peers subscribe HOST PORT CLIENT_ID FILTER OUT
      a city subscriber (paho, MQTT 5, persistent session, QoS 1) appending
      `receive-time<TAB>topic<TAB>seq property<TAB>payload hex` to OUT; prints SUBSCRIBED.
  python -m luciole.simulators.bench.gateway_peers ceiling HOST PORT TOPIC COUNT INFLIGHT
      a bare aiomqtt QoS 1 publisher, INFLIGHT publishes in flight, of COUNT SenML payloads shaped
      as the gateway's; prints `START wall` then `DONE wall cpu_s` after the last PUBACK.
"""

import asyncio
import contextlib
import sys
import time
from collections import deque
from pathlib import Path

from luciole.protocols import link, readings, senml

from ..serial_device import SerialDevice, now_ms

VALUES = (("temperature", 21.5, "Cel"),)


def sample_payload(device_id: str, seq: int) -> bytes:
    """A telemetry payload as the gateway builds it (SenML CBOR) for one bench reading."""
    records = [("seq", seq, None, None), *((n, v, u, None) for n, v, u in VALUES)]
    return senml.encode_cbor(senml.make_pack(f"{device_id}:", records, time.time()))


class BenchDevice(SerialDevice):
    async def send_stamped(self, count: int, first_seq: int, rate: float):
        """As send_readings, but each reading carries its creation time, and with a rate the
        readings are created on a schedule and queue on the device while its window is full."""
        target = self.delivered + count
        queue: deque[bytes] = deque()
        made = 0
        start = time.monotonic()

        def make():
            nonlocal made
            body = readings.encode(self.device_id, first_seq + made, VALUES, time.time())
            made += 1
            return body

        while self.delivered < target:
            if rate:
                due = min(count, int((time.monotonic() - start) * rate) + 1)
                while made < due:
                    queue.append(make())
            while self._link.can_send() and (self._resend or queue or (not rate and made < count)):
                if self._resend:
                    body = self._resend.pop(0)
                elif queue:
                    body = queue.popleft()
                else:
                    body = make()
                self._send(link.READING, body)
            for notice in self._link.poll(now_ms()):
                self._settled(notice)
            self._flush()
            self._wake.clear()
            waits = [self._link.poll_in_ms(now_ms())]
            if rate and made < count:
                waits.append(max(0.0, (start + made / rate - time.monotonic()) * 1000))
            waits = [w for w in waits if w is not None]
            waiter = asyncio.ensure_future(self._wake.wait())
            await asyncio.wait([waiter], timeout=min(waits) / 1000 + 0.0005 if waits else None)
            waiter.cancel()


async def devices_main(directory: str, n: int):
    devices = [BenchDevice(f"bench-{i:04d}", Path(directory) / f"ttyLUC{i}") for i in range(n)]
    print("READY", flush=True)
    try:
        while True:
            line = await asyncio.to_thread(sys.stdin.readline)
            words = line.split()
            if not words or words[0] == "quit":
                return
            if words[0] == "hello":
                while any(d.hellos == 0 for d in devices):
                    await asyncio.sleep(0.02)
                print("OK", flush=True)
            elif words[0] == "send":
                ndev, count, first_seq = (int(w) for w in words[1:4])
                rate = float(words[4])
                print(f"START {time.time():.6f}", flush=True)
                await asyncio.gather(
                    *(d.send_stamped(count, first_seq, rate) for d in devices[:ndev])
                )
                print(f"DONE {time.time():.6f}", flush=True)
    finally:
        for d in devices:
            d.unplug()


def subscribe_main(host, port, client_id, topic_filter, out_path):
    import paho.mqtt.client as mqtt
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    out = open(out_path, "a", buffering=1 << 16)  # noqa: SIM115 (open for the process's life)
    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5
    )

    def on_connect(client, userdata, flags, reason, properties):
        client.subscribe(topic_filter, qos=1)

    subscribed = []

    def on_subscribe(client, userdata, mid, reasons, properties):
        if not subscribed:  # once: it subscribes again after every reconnection
            subscribed.append(mid)
            print("SUBSCRIBED", flush=True)

    def on_message(client, userdata, message):
        received = time.time()
        seq = ""
        props = message.properties
        if props is not None:
            for key, value in getattr(props, "UserProperty", ()):
                if key == "seq":
                    seq = value
        out.write(f"{received:.6f}\t{message.topic}\t{seq}\t{message.payload.hex()}\n")

    client.on_connect, client.on_subscribe, client.on_message = on_connect, on_subscribe, on_message
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = 3600
    client.connect(host, int(port), keepalive=5, clean_start=False, properties=props)
    flushed = time.monotonic()
    while True:
        # one thread: the file is flushed between network reads, so lines are never torn
        if client.loop(timeout=0.02) != mqtt.MQTT_ERR_SUCCESS:
            time.sleep(0.05)
            with contextlib.suppress(OSError):  # the broker is still away
                client.reconnect()
        if time.monotonic() - flushed > 0.05:
            out.flush()
            flushed = time.monotonic()


async def ceiling_main(host, port, topic, count, inflight):
    import aiomqtt

    device = topic.split("/")[-2]
    payloads = [sample_payload(device, seq) for seq in range(count)]
    window = asyncio.Semaphore(inflight)
    failed = []

    def settled(task):
        window.release()
        if not task.cancelled() and task.exception() is not None:
            failed.append(task.exception())

    async with aiomqtt.Client(
        host,
        port,
        identifier="bench-ceiling",
        protocol=aiomqtt.ProtocolVersion.V5,
        max_inflight_messages=inflight,
    ) as client:
        client.pending_calls_threshold = inflight + 16
        pending = set()
        cpu = time.process_time()
        print(f"START {time.time():.6f}", flush=True)
        for payload in payloads:
            await window.acquire()
            if failed:
                raise failed[0]
            task = asyncio.create_task(client.publish(topic, payload, qos=1))
            pending.add(task)
            task.add_done_callback(pending.discard)
            task.add_done_callback(settled)
        await asyncio.gather(*pending)
        print(f"DONE {time.time():.6f} {time.process_time() - cpu:.6f}", flush=True)


def main(argv):
    role, args = argv[0], argv[1:]
    if role == "devices":
        asyncio.run(devices_main(args[0], int(args[1])))
    elif role == "subscribe":
        subscribe_main(*args)
    elif role == "ceiling":
        host, port, topic, count, inflight = args
        asyncio.run(ceiling_main(host, int(port), topic, int(count), int(inflight)))
    else:
        raise SystemExit(f"unknown role {role!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
