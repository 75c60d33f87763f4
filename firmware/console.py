# The device's side of the serial device link (docs/device-link.md): HELLO, commands from the
# gateway or a technician's tool answered with RESPONSE frames, reliable readings/events, and log
# lines as LOG frames. The same console serves provisioning (identify, info, config get/set,
# reboot) and the apps' own commands. The link keeps real time (time.ticks_ms), even where the
# simulator scales the apps' clock: its timers pace a real wire.
import asyncio
import time

from protocols import cbor, link


class Console:
    def __init__(self, uart, hello):
        self._uart = uart
        self._hello = hello  # the HELLO body: {"id", "role", "fw", "board"}
        self._link = link.Link(window=4, retry_ms=250, max_retries=8)
        self._commands = {}
        self._handlers = {}  # frame type -> handler(body): an app's own frames (LIFI)
        self._retransmitting = False  # a task runs while reliable frames are in flight

    def command(self, name, handler):
        # handler(args: dict) -> dict, or raises ValueError("reason") for an error reply
        self._commands[name] = handler

    def on_frame(self, type, handler):
        # handler(body: bytes) for each new frame of that type (retransmissions already dropped)
        self._handlers[type] = handler

    def send(self, type, body, reliable=True):
        # False when the link's window is full: the caller keeps the frame and tries later.
        if reliable and not self._link.can_send():
            return False
        self._out(self._link.send(type, body, time.ticks_ms(), reliable))
        if reliable and not self._retransmitting:
            self._retransmitting = True
            asyncio.create_task(self._retransmit())
        return True

    def log(self, level, message):
        self.send(link.LOG, ("%s %s" % (level, message)).encode(), False)

    async def run(self):
        self.send(link.HELLO, cbor.dumps(self._hello), False)
        while True:
            data = await self._uart.read()
            for frame in self._link.receive(data, time.ticks_ms()):
                if not isinstance(frame, link.Frame):
                    continue  # a bad frame, or a notice about one of ours
                if frame.type == link.HELLO:
                    self.send(link.HELLO, cbor.dumps(self._hello), False)
                elif frame.type == link.COMMAND:
                    self.send(link.RESPONSE, cbor.dumps(self._answer(frame.body)))
                else:
                    handler = self._handlers.get(frame.type)
                    if handler is not None:
                        handler(frame.body)
            self._out(self._link.pending_output())

    def _answer(self, body):
        try:
            request = cbor.loads(body)
        except ValueError as e:
            return {"ok": False, "error": "bad command: %s" % e}
        if not isinstance(request, dict):
            return {"ok": False, "error": "bad command: not a map"}
        reply = {"id": request.get("id")}
        name = request.get("cmd")
        args = request.get("args")
        handler = self._commands.get(name)
        if handler is None:
            reply["ok"] = False
            reply["error"] = "unknown command %r; known: %s" % (
                name,
                ", ".join(sorted(self._commands)),
            )
        elif args is not None and not isinstance(args, dict):
            reply["ok"] = False
            reply["error"] = "args must be a map"
        else:
            try:
                reply["result"] = handler(args or {})
                reply["ok"] = True
            except ValueError as e:
                reply["ok"] = False
                reply["error"] = str(e)
        return reply

    async def _retransmit(self):
        # Started by the first reliable send, ends once none is in flight: a task that sleeps
        # while there is nothing to resend would need an Event, whose module costs ~1 KB of heap.
        link_ = self._link
        wait_ms = link_.poll_in_ms(time.ticks_ms())
        while wait_ms is not None:
            await asyncio.sleep_ms(wait_ms + 1)
            link_.poll(time.ticks_ms())
            self._out(self._link.pending_output())
            wait_ms = link_.poll_in_ms(time.ticks_ms())
        self._retransmitting = False

    def _out(self, data):
        if data:
            self._uart.write(data)
