"""A technician's side of a board's console over pytest-embedded's DUT: device-link frames in,
device-link frames out (docs/device-link.md)."""

import re
import time

from luciole.protocols import cbor, link

FRAME = re.compile(rb"([^\x00]+)\x00")


def now_ms():
    return int(time.monotonic() * 1000)


class Console:
    def __init__(self, dut):
        self.dut = dut
        self.link = link.Link(retry_ms=300, max_retries=10)
        self.next_id = 1
        self.logs = []

    def frames(self, timeout_s):
        """Frames from the board until timeout_s passes without one; answers what must be."""
        while True:
            try:
                match = self.dut.expect(FRAME, timeout=timeout_s)
            except Exception:  # pexpect.TIMEOUT: the board is quiet
                return
            for event in self.link.receive(match.group(0), now_ms()):
                if isinstance(event, link.Frame):
                    if event.type == link.LOG:
                        self.logs.append(event.body.decode())
                    yield event
            self.flush()

    def flush(self):
        self.link.poll(now_ms())
        out = self.link.pending_output()
        if out:
            self.dut.write(out)

    def hello(self, timeout_s=15):
        """Greets the board as the gateway does; its HELLO body."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self.dut.write(self.link.send(link.HELLO, cbor.dumps({"id": "technician"}), now_ms(),
                                          reliable=False))  # fmt: skip
            for frame in self.frames(1.0):
                if frame.type == link.HELLO:
                    return cbor.loads(frame.body)
        raise AssertionError("no HELLO from the board")

    def reboot(self, timeout_s=30):
        """Reboots the board and waits until its firmware says it is up again."""
        assert self.call("reboot")["result"] == {"rebooting": True}
        self.logs.clear()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for _ in self.frames(0.5):
                if any(" up on " in line for line in self.logs):
                    self.link = link.Link(retry_ms=300, max_retries=10)  # a new session
                    return self.hello()
        raise AssertionError("the board did not come back")

    def call(self, command, args=None, timeout_s=10):
        """One command; the board's reply {"ok", "result" | "error"}."""
        request_id = self.next_id
        self.next_id += 1
        body = {"id": request_id, "cmd": command}
        if args is not None:
            body["args"] = args
        self.dut.write(self.link.send(link.COMMAND, cbor.dumps(body), now_ms()))
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for frame in self.frames(0.3):
                if frame.type == link.RESPONSE:
                    reply = cbor.loads(frame.body)
                    if reply.get("id") == request_id:
                        return reply
            self.flush()  # retransmits a lost COMMAND
        raise AssertionError(f"no reply to {command}")
