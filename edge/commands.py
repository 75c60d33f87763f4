"""Downlink: commands on `cmd/{target}/{command}`, answered on the MQTT 5 response topic.

A request's payload is a JSON object: {"args": {...}, "ttl_s": seconds} (both optional). The
reply is JSON {"ok": true, "result": ...} or {"ok": false, "error": "..."}, published to the
request's response topic with its correlation data. MQTT 3.1.1 has no response topic: commands
run, unanswered.

- A command for this gateway (target = the gateway id) runs here: `ping`, `status`, and those
  the gateway's services add with `handle(name, handler)` (parking-close, parking-open).
- A command for a device on a serial link goes to it as a COMMAND frame; the device's RESPONSE
  becomes the reply. A device that is offline gets it when it is back, if that happens within
  ttl_s (default DEFAULT_TTL_S, 0 = now or never); otherwise the reply says it expired.
- Targets this gateway does not know are left alone: another gateway on the broker owns them.

The gateway's own services send commands to devices too (ask), through the same ids and RESPONSE
matching, awaiting the answer instead of publishing it.
"""

import asyncio
import json
import logging
import time
from dataclasses import dataclass

import aiomqtt

from luciole.protocols import cbor, link
from luciole.protocols.errors import DecodeError

log = logging.getLogger("luciole.commands")

DEFAULT_TTL_S = 30.0
MAX_TTL_S = 3600.0
RESPONSE_TIMEOUT_S = 10.0
WINDOW_POLL_S = 0.01  # a full link window frees up within an ACK's round trip


class CommandFailed(Exception):
    """A device refused a command of the gateway's own, did not answer, or cannot be reached."""


@dataclass
class Request:
    target: str
    command: str
    args: dict
    reply_topic: str | None
    correlation: bytes | None
    expires: float  # monotonic time after which an undelivered command is answered "expired"
    answer: asyncio.Future | None = None  # set for the gateway's own commands (ask)


class Commands:
    def __init__(self, gateway):
        self.gateway = gateway
        # the gateway's own commands: name -> handler(args) -> result, ValueError("reason")
        self._handlers = {
            "ping": lambda args: "pong",
            "status": lambda args: json.loads(gateway.status_payload("online")),
        }
        self._next_id = 0
        self._waiting: dict[int, Request] = {}  # command id -> sent, awaiting the RESPONSE
        self._queued: dict[str, list[Request]] = {}  # device id -> for when it is back

    async def subscribe(self, client: aiomqtt.Client):
        await client.subscribe(self.gateway.topics.filter("command"), qos=1)

    async def on_message(self, client: aiomqtt.Client, message: aiomqtt.Message):
        try:
            name, (target, command) = self.gateway.topics.parse(str(message.topic))
        except DecodeError:
            return
        if name != "command":
            return
        if target != self.gateway.id and target not in self.gateway.registry.devices:
            return  # another gateway's device
        props = message.properties
        request = Request(
            target,
            command,
            {},
            getattr(props, "ResponseTopic", None),
            getattr(props, "CorrelationData", None),
            time.monotonic() + DEFAULT_TTL_S,
        )
        try:
            self._parse(request, message.payload)
        except ValueError as e:
            await self.reply(request, error=str(e))
            return
        if target == self.gateway.id:
            await self._run_here(request)
        else:
            await self._route(request)

    def _parse(self, request: Request, payload: bytes):
        if not payload:
            return
        try:
            body = json.loads(payload)
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ValueError(f"payload is not JSON: {e}") from None
        if not isinstance(body, dict) or set(body) - {"args", "ttl_s"}:
            raise ValueError('payload must be a JSON object with "args" and/or "ttl_s"')
        args = body.get("args", {})
        ttl_s = body.get("ttl_s", DEFAULT_TTL_S)
        if not isinstance(args, dict):
            raise ValueError('"args" must be a JSON object')
        if isinstance(ttl_s, bool) or not isinstance(ttl_s, int | float) or not ttl_s >= 0:
            raise ValueError('"ttl_s" must be a number of seconds >= 0')
        request.args = args
        request.expires = time.monotonic() + min(ttl_s, MAX_TTL_S)

    def handle(self, name: str, handler):
        """Adds a gateway command: handler(args: dict) returns the result, or raises
        ValueError("reason") for an error reply."""
        self._handlers[name] = handler

    async def _run_here(self, request: Request):
        handler = self._handlers.get(request.command)
        if handler is None:
            known = ", ".join(sorted(self._handlers))
            await self.reply(
                request, error=f"unknown gateway command {request.command!r}; known: {known}"
            )
            return
        try:
            result = handler(request.args)
        except ValueError as e:
            await self.reply(request, error=str(e))
        else:
            await self.reply(request, result=result)

    async def _route(self, request: Request):
        device = self.gateway.registry.devices[request.target]
        port = self.gateway.port_for(device)
        if port is None:
            await self.reply(
                request,
                error=f"{device.id} is reached over {device.link or 'no link'}, "
                "which takes no commands",
            )
        elif device.online and not self._queued.get(device.id) and self._send(port, request):
            self.gateway.metrics.commands.labels("sent").inc()
        elif time.monotonic() < request.expires:
            # offline, or its link's window is full: sent in order when it is back or when an
            # ACK frees the window (send_queued)
            self._queued.setdefault(device.id, []).append(request)
            self.gateway.metrics.commands.labels("queued").inc()
        else:
            await self.reply(request, error=f"{device.id} is offline")

    def _send(self, port, request: Request) -> bool:
        self._next_id = (self._next_id + 1) & 0xFFFFFFFF
        body = cbor.dumps({"id": self._next_id, "cmd": request.command, "args": request.args})
        if not port.send(link.COMMAND, body):
            return False
        request.expires = time.monotonic() + RESPONSE_TIMEOUT_S
        self._waiting[self._next_id] = request
        return True

    async def ask(self, port, device_id, command, args, timeout_s=RESPONSE_TIMEOUT_S):
        """Runs a command of the gateway's own on the device on `port`; its result, or
        CommandFailed with the device's error or why it got none."""
        answer = asyncio.get_running_loop().create_future()
        request = Request(device_id, command, args, None, None, 0.0, answer)
        while not self._send(port, request):
            if port.writer is None:
                raise CommandFailed(f"{device_id}: {port.name} is closed")
            await asyncio.sleep(WINDOW_POLL_S)
        request.expires = time.monotonic() + timeout_s  # expire() answers it "did not answer"
        return await answer

    async def response(self, body: bytes):
        """A RESPONSE frame: {"id", "ok", "result" | "error"}."""
        answer = cbor.loads(body)
        if not isinstance(answer, dict):
            raise DecodeError("response: not a map")
        request = self._waiting.pop(answer.get("id"), None)
        if request is None:
            return  # answered already, or expired
        if answer.get("ok"):
            await self.reply(request, result=answer.get("result"))
        else:
            await self.reply(request, error=str(answer.get("error", "the device refused")))

    def send_queued(self, device):
        """Sends what waits for this device, in order, as long as its link's window takes it
        (expire() answers what waited too long)."""
        port = self.gateway.port_for(device)
        waiting = self._queued.get(device.id, [])
        while waiting and port is not None and self._send(port, waiting[0]):
            waiting.pop(0)
            self.gateway.metrics.commands.labels("sent").inc()
        if not waiting:
            self._queued.pop(device.id, None)

    async def expire(self):
        """Answers commands whose device never came back or never answered."""
        now = time.monotonic()
        for command_id, request in list(self._waiting.items()):
            if now >= request.expires:
                del self._waiting[command_id]
                await self.reply(request, error=f"{request.target} did not answer in time")
        for device_id, requests in list(self._queued.items()):
            for request in [r for r in requests if now >= r.expires]:
                requests.remove(request)
                await self.reply(request, error=f"expired: {device_id} stayed offline")
            if not requests:
                del self._queued[device_id]

    async def reply(self, request: Request, result=None, error=None):
        if request.answer is not None:  # the gateway's own: not counted as the city's
            if not request.answer.done():  # the asker may have been cancelled
                if error is None:
                    request.answer.set_result(result)
                else:
                    request.answer.set_exception(CommandFailed(error))
            return
        outcome = "failed" if error is not None else "ok"
        self.gateway.metrics.commands.labels(outcome).inc()
        if error is not None:
            log.warning("cmd %s/%s: %s", request.target, request.command, error)
        if not request.reply_topic:
            return
        body = {"ok": True, "result": result} if error is None else {"ok": False, "error": error}
        await self.gateway.uplink.reply(
            request.reply_topic, json.dumps(body).encode(), request.correlation
        )
