"""The gateway bench's other processes, each in its own interpreter so no GIL is shared with the
gateway or with the process that measures:

  python -m luciole.simulators.bench.gateway_peers devices DIR N
      N serial devices on ptys DIR/ttyLUC0..; prints READY, then obeys lines on stdin:
      `hello` (waits until the gateway greeted every device), `send NDEV COUNT FIRST_SEQ RATE`
      (devices 0..NDEV-1 each send COUNT readings from FIRST_SEQ, RATE per second each, 0 for as
      fast as the link's window allows; prints `START wall` then `DONE wall` once all are
      acknowledged), `quit`. Each reading carries its creation time (wall clock) as "t".
  python -m luciole.simulators.bench.gateway_peers subscribe HOST PORT CLIENT_ID FILTER OUT
      a city subscriber (MQTT 5 on a bare socket, persistent session, QoS 1) appending
      `receive-time<TAB>topic<TAB>seq property<TAB>payload hex` to OUT; prints SUBSCRIBED.
  python -m luciole.simulators.bench.gateway_peers ceiling HOST PORT TOPIC COUNT INFLIGHT
      a bare aiomqtt QoS 1 publisher, INFLIGHT publishes in flight, of COUNT SenML payloads shaped
      as the gateway's; prints `START wall` then `DONE wall cpu_s` after the last PUBACK.
"""

import asyncio
import socket
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
    """The city: an MQTT 5 subscriber with a persistent session and QoS 1, on a bare socket.

    paho builds Python objects for every property of every message it receives: ~150 us of CPU
    per gateway message (content type and seq), more than the bare publisher spends to send one.
    On two cores that subscriber took most of a core from the gateway it measured. This one
    reads the packets itself: ~10 us a message."""
    out = open(out_path, "a", buffering=1 << 16)  # noqa: SIM115 (open for the process's life)
    subscribed = False
    while True:
        try:
            sock = socket.create_connection((host, int(port)))
        except OSError:  # the broker is away (the drain run stops it): the session waits there
            time.sleep(0.05)
            continue
        sock.settimeout(0.05)  # and then flush what was received
        sock.sendall(_mqtt_connect(client_id))
        data = b""
        try:
            while True:
                try:
                    chunk = sock.recv(1 << 16)
                except TimeoutError:
                    out.flush()
                    continue
                if not chunk:
                    raise ConnectionError("the broker closed the connection")
                received = f"{time.time():.6f}"
                packets, data = _mqtt_packets(data + chunk)
                acks = []
                for first, body in packets:
                    kind = first >> 4
                    if kind == 3:  # PUBLISH
                        topic, ack, seq, payload = _mqtt_publish(first, body)
                        out.write(f"{received}\t{topic}\t{seq}\t{payload.hex()}\n")
                        acks.append(ack)
                    elif kind == 2:  # CONNACK
                        if body[1] != 0:
                            raise ConnectionError(f"connection refused, reason {body[1]}")
                        sock.sendall(_mqtt_subscribe(topic_filter))
                    elif kind == 9 and not subscribed:  # SUBACK
                        subscribed = True
                        print("SUBSCRIBED", flush=True)
                if acks:
                    sock.sendall(b"".join(acks))
        except OSError:
            out.flush()
            sock.close()


def _mqtt_connect(client_id: str) -> bytes:
    # MQTT 5, clean start off, no keep-alive, properties: session expiry one hour
    body = b"\x00\x04MQTT\x05\x00\x00\x00" + b"\x05\x11" + (3600).to_bytes(4, "big")
    return _mqtt_packet(0x10, body + _mqtt_text(client_id.encode()))


def _mqtt_subscribe(topic_filter: str) -> bytes:
    # packet id 1, no properties, the filter at QoS 1
    return _mqtt_packet(0x82, b"\x00\x01\x00" + _mqtt_text(topic_filter.encode()) + b"\x01")


def _mqtt_packet(first: int, body: bytes) -> bytes:
    length, size = bytearray(), len(body)
    while True:  # the remaining length, 7 bits a byte
        size, low = divmod(size, 128)
        length.append(low | (0x80 if size else 0))
        if not size:
            return bytes([first]) + length + body


def _mqtt_text(data: bytes) -> bytes:
    return len(data).to_bytes(2, "big") + data


def _mqtt_packets(data: bytes) -> tuple[list[tuple[int, bytes]], bytes]:
    """The whole packets at the start of data, as (first byte, body), and what follows them."""
    packets, at = [], 0
    while at < len(data):
        size, start = _mqtt_varint(data, at + 1)
        if size is None or start + size > len(data):
            break
        packets.append((data[at], data[start : start + size]))
        at = start + size
    return packets, data[at:]


def _mqtt_publish(first: int, body: bytes) -> tuple[str, bytes, str, bytes]:
    """A PUBLISH's topic, the PUBACK it needs, its user property seq ("" if none), payload."""
    at = 2 + int.from_bytes(body[:2], "big")
    topic = body[2:at].decode()
    ack = b""
    if first & 0x06:  # QoS 1, as subscribed
        ack = b"\x40\x02" + body[at : at + 2]
        at += 2
    size, at = _mqtt_varint(body, at)
    properties, payload = body[at : at + size], body[at + size :]
    seq = ""
    at = 0
    while at < len(properties):
        ident = properties[at]
        at += 1
        if ident == 0x26:  # a user property: two strings
            key_end = at + 2 + int.from_bytes(properties[at : at + 2], "big")
            end = key_end + 2 + int.from_bytes(properties[key_end : key_end + 2], "big")
            if properties[at + 2 : key_end] == b"seq":
                seq = properties[key_end + 2 : end].decode()
            at = end
        elif ident in (0x03, 0x08, 0x09):  # content type, response topic, correlation data
            at += 2 + int.from_bytes(properties[at : at + 2], "big")
        else:  # payload format, message expiry; no publisher here sends any other
            at += {0x01: 1, 0x02: 4}[ident]
    return topic, ack, seq, payload


def _mqtt_varint(data: bytes, at: int) -> tuple[int | None, int]:
    """A variable byte integer at data[at:] and the offset after it; None if cut short."""
    value = shift = 0
    while at < len(data):
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, at
        shift += 7
    return None, at


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
