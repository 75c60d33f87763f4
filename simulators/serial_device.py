"""A device at the far end of a pseudo-terminal, speaking the device link from CPython.

The gateway opens `path` with pyserial exactly as it opens /dev/ttyUSB0. `unplug()` and `replug()`
move a stable symlink between pty pairs, as a USB device that goes away and comes back.
"""

import asyncio
import os
import time
import tty
from pathlib import Path

from luciole.protocols import cbor, link, readings


def now_ms() -> int:
    return int(time.monotonic() * 1000)


class SerialDevice:
    def __init__(self, device_id: str, path: Path, window=16, retry_ms=250, role="sensor"):
        self.device_id, self.role = device_id, role
        self.path = Path(path)  # a symlink to the current pty's slave side
        self.window, self.retry_ms = window, retry_ms
        self.delivered = 0
        self.hellos = 0
        self.commands_received = []
        self._resend: list[bytes] = []  # bodies the link gave up on: a device never drops them
        # seqs of readings sent more than once: only these may arrive after later ones, up to
        # window - 1 of them (docs/device-link.md 4.2); the gateway's open discards what came
        # before it, so a device that starts first always has some
        self.resent: set[int] = set()
        self._master = self._slave = None
        self._link: link.Link | None = None
        self._wake = asyncio.Event()
        self.replug()

    def replug(self):
        self.unplug()
        master, slave = os.openpty()
        tty.setraw(slave)  # raw before anyone opens it: no echo, no CRLF mangling
        os.set_blocking(master, False)
        self._master, self._slave = master, slave
        tmp = self.path.with_suffix(".new")
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(os.ttyname(slave))
        tmp.replace(self.path)
        # a device never gives up on a reading: retrying in place also keeps them in order
        self._link = link.Link(window=self.window, retry_ms=self.retry_ms, max_retries=1_000_000)
        asyncio.get_running_loop().add_reader(master, self._readable)

    def hang(self):
        """The firmware hangs: the port stays open, the device reads and answers nothing.
        replug() starts it again."""
        asyncio.get_running_loop().remove_reader(self._master)

    def unplug(self):
        if self._master is not None:
            asyncio.get_running_loop().remove_reader(self._master)
            os.close(self._master)
            os.close(self._slave)
            self._master = self._slave = None
        self.path.unlink(missing_ok=True)

    def _readable(self):
        try:
            data = os.read(self._master, 65536)
        except OSError:  # the gateway closed its side; it reopens later
            return
        self._handle(data)

    def _handle(self, data: bytes):
        for event in self._link.receive(data, now_ms()):
            if isinstance(event, tuple):
                self._settled(event)
            elif isinstance(event, link.Frame) and event.type == link.HELLO:
                self.hellos += 1
                self._send(link.HELLO, cbor.dumps({"id": self.device_id, "role": self.role}), False)
            elif isinstance(event, link.Frame) and event.type == link.COMMAND:
                self._answer(cbor.loads(event.body))
            elif isinstance(event, link.Frame):
                self.on_frame(event)
        self._flush()
        self._wake.set()

    def _answer(self, command):
        """Commands a simple device knows: echo (its args back) and identify."""
        self.commands_received.append(command)
        if command["cmd"] == "echo":
            answer = {"id": command["id"], "ok": True, "result": command["args"]}
        elif command["cmd"] == "identify":
            answer = {"id": command["id"], "ok": True, "result": {"id": self.device_id}}
        else:
            answer = {
                "id": command["id"],
                "ok": False,
                "error": f"unknown command {command['cmd']}",
            }
        self._send(link.RESPONSE, cbor.dumps(answer))

    def on_frame(self, frame: link.Frame):
        """Frames other than HELLO and COMMAND (LIFI for a luminaire): a subclass takes them."""

    def inject(self, data: bytes):
        """Raw bytes on the line, bypassing the link: noise, damaged frames."""
        self._write(data)

    def _settled(self, notice):
        kind, frame = notice
        if kind == link.DELIVERED:
            self.delivered += 1
        elif frame.type == link.READING:
            self._resend.append(frame.body)
            self.resent.add(readings.decode(frame.body)[1])

    def _send(self, frame_type, body, reliable=True):
        self._write(self._link.send(frame_type, body, now_ms(), reliable=reliable))

    def _flush(self):
        self._write(self._link.pending_output())

    def _write(self, data):
        view = memoryview(data)
        while view:
            try:
                view = view[os.write(self._master, view) :]
            except BlockingIOError:
                time.sleep(0.0005)  # the pty buffer is full: the gateway is reading
            except OSError:
                return

    async def send_readings(self, count: int, first_seq=0, values=(("temperature", 21.5, "Cel"),)):
        """Sends readings seq first_seq.. as fast as the link's window allows, until all are
        acknowledged; retransmits what is lost (or what the gateway did not acknowledge)."""
        target = self.delivered + count
        seq = first_seq
        while self.delivered < target:
            while self._link.can_send() and (self._resend or seq < first_seq + count):
                if self._resend:
                    body = self._resend.pop(0)
                else:
                    body = readings.encode(self.device_id, seq, values)
                    seq += 1
                self._send(link.READING, body)
            for notice in self._link.poll(now_ms()):
                self._settled(notice)
            # what poll() queued is retransmissions only: _handle() flushes the ACKs it queues
            again = self._link.pending_output()
            for frame in link.FrameDecoder().feed(again):
                if frame.type == link.READING:
                    self.resent.add(readings.decode(frame.body)[1])
            self._write(again)
            self._wake.clear()
            wait_ms = self._link.poll_in_ms(now_ms())
            waiter = asyncio.ensure_future(self._wake.wait())
            await asyncio.wait(
                [waiter], timeout=None if wait_ms is None else wait_ms / 1000 + 0.001
            )
            waiter.cancel()
