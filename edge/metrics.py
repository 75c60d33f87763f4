"""What the gateway counts, served as Prometheus text on /metrics, with /healthz beside it."""

import asyncio
import logging

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

log = logging.getLogger("luciole.metrics")


class Metrics:
    def __init__(self):
        self.registry = r = CollectorRegistry()
        self.queue_depth = Gauge(
            "luciole_queue_depth", "Messages waiting for the broker", registry=r
        )
        self.published = Counter(
            "luciole_published", "Messages the broker acknowledged", registry=r
        )
        # a gauge because the count is kept on disk and survives restarts
        self.dropped = Gauge(
            "luciole_dropped_messages",
            "Oldest messages dropped because the outbox was full, since the outbox was created",
            registry=r,
        )
        self.reconnects = Counter("luciole_reconnects", "Connections to the broker", registry=r)
        self.broker_connected = Gauge(
            "luciole_broker_connected", "1 while connected to the broker", registry=r
        )
        self.link_frames = Counter(
            "luciole_link_frames", "Frames received per serial link", ["port"], registry=r
        )
        self.link_errors = Counter(
            "luciole_link_errors",
            "Rejected frames per serial link and reason",
            ["port", "reason"],
            registry=r,
        )
        self.link_up = Gauge(
            "luciole_link_up", "1 while the serial port is open", ["port"], registry=r
        )
        self.adverts = Counter(
            "luciole_ble_adverts", "BLE adverts heard, by outcome", ["outcome"], registry=r
        )
        self.scanner_restarts = Counter(
            "luciole_ble_scanner_restarts", "BLE scanner restarts by the watchdog", registry=r
        )
        self.commands = Counter(
            "luciole_commands",
            "Commands by stage: queued (device offline), sent, then ok or failed",
            ["outcome"],
            registry=r,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)


async def serve(listen: str, metrics: Metrics, healthy) -> asyncio.Server:
    """A small HTTP/1.0 server: GET /metrics and GET /healthz (200 when `healthy()`, else 503)."""
    host, _, port = listen.rpartition(":")

    async def handle(reader, writer):
        try:
            request = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            method, path, *_ = request.split(b" ", 2)
            if method != b"GET":
                status, kind, body = "405 Method Not Allowed", "text/plain", b"GET only\n"
            elif path == b"/metrics":
                status, kind, body = "200 OK", CONTENT_TYPE_LATEST, metrics.render()
            elif path == b"/healthz":
                ok, detail = healthy()
                status = "200 OK" if ok else "503 Service Unavailable"
                kind, body = "application/json", detail
            else:
                status, kind, body = "404 Not Found", "text/plain", b"try /metrics or /healthz\n"
            head = (
                f"HTTP/1.0 {status}\r\nContent-Type: {kind}\r\nContent-Length: {len(body)}\r\n\r\n"
            )
            writer.write(head.encode() + body)
            await writer.drain()
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, ValueError):
            pass
        except ConnectionError:
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, host, int(port))
    log.info("metrics on http://%s/metrics", listen)
    return server
