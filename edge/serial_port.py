"""One serial port (UART, RS-485, USB) of the gateway, speaking the device link.

Opens the port, greets with HELLO, and turns READING and EVENT frames into outbox messages. A
frame is acknowledged only after its reading is on disk, so a device retransmits whatever the
gateway had not yet stored when it died. An unplugged device is picked up again when it comes
back; a silent one is marked offline by the gateway's availability check.
"""

import asyncio
import logging
import time

import serial
import serial_asyncio_fast

from luciole.protocols import cbor, link, readings
from luciole.protocols.errors import DecodeError

from .config import SerialPortConfig

log = logging.getLogger("luciole.serial")

REOPEN_S = 1.0
# Frames in flight to a device. A board remembers 2 x this many for its duplicate check
# (firmware/runtime.py _GATEWAY_WINDOW): a larger window needs boards that remember more.
LINK_WINDOW = 4
READ_BYTES = 4096


def now_ms() -> int:
    return int(time.monotonic() * 1000)


class SerialPort:
    def __init__(self, config: SerialPortConfig, gateway):
        self.config = config
        self.gateway = gateway  # accept(), hello(), heard(), metrics, id
        self.name = "serial:" + config.port
        self.writer = None
        self.link: link.Link | None = None
        # the session's wait for bytes; send() brings its deadline forward to a new frame's
        # first retransmission, which is due even if the device never speaks
        self._read_timeout: asyncio.Timeout | None = None

    async def run(self):
        metrics = self.gateway.metrics
        missing_logged = False
        while True:
            try:
                reader, self.writer = await serial_asyncio_fast.open_serial_connection(
                    url=self.config.port, baudrate=self.config.baud
                )
            except (serial.SerialException, OSError) as e:
                if not missing_logged:
                    log.warning(
                        "%s: cannot open (%s); retrying every %.0f s", self.config.port, e, REOPEN_S
                    )
                    missing_logged = True
                await asyncio.sleep(REOPEN_S)
                continue
            missing_logged = False
            metrics.link_up.labels(self.config.port).set(1)
            log.info("%s: open", self.config.port)
            try:
                await self._session(reader)
            except (serial.SerialException, OSError, ConnectionError) as e:
                # a pty or USB device that went away reports readiness with no data
                log.warning("%s: lost (%s)", self.config.port, e)
            finally:
                metrics.link_up.labels(self.config.port).set(0)
                self.writer.close()
                self.writer = self.link = None
            await asyncio.sleep(REOPEN_S)

    async def _session(self, reader):
        self.link = link.Link(window=LINK_WINDOW)
        greeting = cbor.dumps({"gateway": self.gateway.id})
        self.writer.write(self.link.send(link.HELLO, greeting, now_ms(), reliable=False))
        port = self.config.port
        frames = self.gateway.metrics.link_frames.labels(port)
        loop = asyncio.get_running_loop()
        while True:
            # wake for retransmissions of our own reliable frames (commands) when any are out
            wait_ms = self.link.poll_in_ms(now_ms())
            try:
                deadline = None if wait_ms is None else loop.time() + wait_ms / 1000
                async with asyncio.timeout_at(deadline) as self._read_timeout:
                    data = await reader.read(READ_BYTES)
            except TimeoutError:
                data = None
            finally:
                self._read_timeout = None
            if data == b"":
                raise ConnectionError("end of file")
            events = self.link.receive(data, now_ms()) if data else []
            events += self.link.poll(now_ms())
            messages = []
            for event in events:
                if isinstance(event, link.FrameError):
                    self._reject(event.reason)
                elif isinstance(event, link.Frame):
                    frames.inc()
                    try:
                        message = self._handle(event)
                    except DecodeError as e:
                        self._reject("body")
                        log.warning("%s: %s", port, e)
                        continue
                    if message is not None:
                        messages.append(message)
                else:
                    self.gateway.notice(self, event)
            if messages:
                await self.gateway.accept(messages, self.name)
            # ACKs leave only now: what they acknowledge is durable
            self.writer.write(self.link.pending_output())

    def _reject(self, reason):
        self.gateway.metrics.link_errors.labels(self.config.port, reason).inc()

    def _handle(self, frame: link.Frame):
        if frame.type in (link.READING, link.EVENT):
            device_id, seq, values, time_s = readings.decode(frame.body)
            return self.gateway.reading(
                device_id, seq, values, time_s, self.name, event=frame.type == link.EVENT
            )
        if frame.type == link.HELLO:
            hello = cbor.loads(frame.body)
            if not isinstance(hello, dict):
                raise DecodeError("hello: not a map")
            self.gateway.hello(hello, self.name)
        elif frame.type == link.RESPONSE:
            self.gateway.response(frame, self)
        elif frame.type == link.LOG:
            log.info("%s: device says %r", self.config.port, frame.body[:200])
        return None

    def send(self, frame_type: int, body: bytes, reliable=True) -> bool:
        """Queues a frame to the device; False when the port is closed or the window full."""
        if self.writer is None or not self.link.can_send():
            return False
        self.writer.write(self.link.send(frame_type, body, now_ms(), reliable=reliable))
        waiting = self._read_timeout
        # (an expired wait is already waking the session, which then sees this frame too)
        if reliable and waiting is not None and not waiting.expired():
            due = asyncio.get_running_loop().time() + self.link.poll_in_ms(now_ms()) / 1000
            if waiting.when() is None or due < waiting.when():
                waiting.reschedule(due)
        return True
