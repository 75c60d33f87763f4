# Starts a firmware app on its board: loads the board and its HAL, the persistent config, the
# device-link console with the provisioning commands, the watchdog; then runs the app.
#
#   from firmware import runtime
#   runtime.start("beacon")          # the board's main.py, written by `luciole firmware build`
#
# The board is its definition (boards/<name>.json, copied to the board as board.json) and the HAL
# of its port (boards/hal_<port>.py). Apps never name pins: they ask the HAL for an alias
# ("magnetometer", "link_uart") and the definition says what that is here.
#
# The console is the device's side of the serial device link (docs/device-link.md): HELLO,
# commands from the gateway or a technician's tool answered with RESPONSE frames, log lines as
# LOG frames, and an app's own frames (the luminaire's LIFI). It serves provisioning (identify,
# info, config get/set, reboot) and the apps' own commands. The link keeps real time
# (time.ticks_ms), even where the simulator scales the apps' clock: its timers pace a real wire.
import asyncio
import gc
import json
import sys
import time

from firmware.config_store import ConfigStore
from protocols import cbor, link

try:
    from micropython import const
except ImportError:

    def const(x):
        return x


try:
    from os import getenv  # the unix port: the simulator points at another definition
except ImportError:

    def getenv(name):
        return None


_FIRMWARE_VERSION = const("0.1.0")
_GATEWAY_WINDOW = const(4)  # edge/serial_port.py's LINK_WINDOW: what the gateway sends at once
_RECEIVE_BYTES = const(256)  # the longest frame body a board takes, unless its app says: commands
# the provisioning commands every board answers, served by firmware/provisioning.py
_PROVISIONING = const(("identify", "info", "config-get", "config-set", "reboot"))
_WATCHDOG_MS = const(8000)  # const and underscored: inlined, no global to keep in the heap


class Device:
    # What an app gets besides the HAL: identity, config, console commands and frames, log.
    def __init__(self, hal, app_name, app):
        self.hal = hal
        self.config = ConfigStore(hal.storage + "config.json")
        self.id = self.config.get("id") or hal.id  # the board's own, unless configured
        self.boots = self.config.get("boots", 0) + 1
        self.config.update({"boots": self.boots})
        self.settings = getattr(app, "CONFIG", {})  # key -> default: what config-set accepts
        self.heap_peak = 0  # bytes of live heap, sampled as the watchdog is fed
        self._started_ms = hal.clock.ticks_ms()
        # what the console says in its HELLO, and identify answers
        self.hello = {
            "id": self.id,
            "role": app_name,
            "fw": _FIRMWARE_VERSION,
            "board": hal.board["name"],
        }
        self._uart = hal.open("link_uart")
        # the app says how long a frame it takes from the gateway (the luminaire's LIFI frames)
        receive_bytes = getattr(app, "RECEIVE_BYTES", _RECEIVE_BYTES)
        # its peer is the gateway, which sends up to _GATEWAY_WINDOW frames at once: 8 remembered
        self._link = link.Link(
            window=4,
            retry_ms=250,
            max_retries=8,
            receive_body_bytes=receive_bytes,
            peer_window=_GATEWAY_WINDOW,
        )
        self._handlers = {}  # frame type -> handler(body): an app's own frames (LIFI)
        self._retransmitting = False  # a task runs while reliable frames are in flight
        self._commands = {}  # an app's: name -> handler, or (module name, context)

    def setting(self, key):
        return self.config.get(key, self.settings[key])

    def command(self, name, handler, context=None):
        # handler(args: dict) -> dict, or raises ValueError("reason") for an error reply. Or the
        # name of a module whose function of the command's name ("-" as "_") does that, given
        # (context, args): a cold command, its code on the heap only while it runs (a
        # technician's command, not the steady loop's).
        self._commands[name] = handler if context is None else (handler, context)

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
        self.hal.log(level, message)

    def uptime_s(self):
        return (self.hal.clock.ticks_ms() - self._started_ms) // 1000

    # -- the console --------------------------------------------------------------------------

    async def run(self):
        self.send(link.HELLO, cbor.dumps(self.hello), False)
        while True:
            data = await self._uart.read()
            for frame in self._link.receive(data, time.ticks_ms()):
                if not isinstance(frame, link.Frame):
                    continue  # a bad frame, or a notice about one of ours
                if frame.type == link.HELLO:
                    self.send(link.HELLO, cbor.dumps(self.hello), False)
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
            why = "not a map"
        except ValueError as e:
            request, why = None, e
        if not isinstance(request, dict):
            return {"ok": False, "error": "bad command: %s" % (why,)}
        reply = {"id": request.get("id")}
        name = request.get("cmd")
        args = request.get("args")
        handler = self._commands.get(name)
        if handler is None and name in _PROVISIONING:
            handler = ("firmware.provisioning", self)
        if handler is None:
            reply["ok"] = False
            reply["error"] = "unknown command %r; known: %s" % (
                name,
                ", ".join(sorted(list(self._commands) + list(_PROVISIONING))),
            )
        elif args is not None and not isinstance(args, dict):
            reply["ok"] = False
            reply["error"] = "args must be a map"
        else:
            try:
                if isinstance(handler, tuple):
                    reply["result"] = _run_cold(handler[0], name, handler[1], args or {})
                else:
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
            self._out(link_.pending_output())
            wait_ms = link_.poll_in_ms(time.ticks_ms())
        self._retransmitting = False

    def _out(self, data):
        if data:
            self._uart.write(data)


def _run_cold(module_name, command, context, args):
    # The module is imported for this call and dropped after with whatever it imported: its
    # functions and their bytecode (about 2 KB) leave the heap, and the steady loop's peak holds
    # one cold module at a time, not all of them. What it started (a blink, a reboot) keeps what
    # it needs.
    loaded = list(sys.modules)
    gc.collect()  # the module's code goes in one piece where it can
    try:
        module = __import__(module_name, None, None, [command])
        return getattr(module, command.replace("-", "_"))(context, args)
    finally:
        for name in list(sys.modules):
            if name not in loaded:
                del sys.modules[name]
                package, _, leaf = name.rpartition(".")
                if package in sys.modules:
                    delattr(sys.modules[package], leaf)


async def _feed(hal, device):
    # Feeds the watchdog, and samples the live heap while at it (for `info` and the firmware
    # bench): the collection costs ~1 ms every 2 s.
    watchdog = hal.watchdog(_WATCHDOG_MS)
    while True:
        watchdog.feed()
        gc.collect()
        device.heap_peak = max(device.heap_peak, gc.mem_alloc())
        await hal.clock.sleep_ms(_WATCHDOG_MS // 4)


async def _main(hal, app_name, app):
    aliases = hal.board["aliases"]
    missing = [alias for alias in getattr(app, "REQUIRES", ()) if alias not in aliases]
    if missing:
        hal.log("error", "%s needs %s, which %s lacks" % (app_name, missing, hal.board["name"]))
        return
    await hal.start()
    device = Device(hal, app_name, app)
    # a failing task must not print on the link (stdout on the unix port): log it, reboot
    asyncio.get_event_loop().set_exception_handler(
        lambda loop, context: _crashed(device.log, hal, context["exception"])
    )
    asyncio.create_task(_feed(hal, device))
    asyncio.create_task(device.run())
    device.log(
        "info",
        "%s %s up on %s, boot %d" % (app_name, _FIRMWARE_VERSION, hal.board["name"], device.boots),
    )
    await app.main(hal, device)  # an app's main runs as long as the board: a crash ends it


def _crashed(log, hal, error):
    # log: the device's (on the link and the board's log) or, before there is one, the HAL's
    log("error", "crash: %s: %s" % (type(error).__name__, error))
    hal.reset()


def start(app_name):
    hal = None
    try:
        # The app's modules before the board's definition: most names in it (aliases, kinds,
        # keys) are then names MicroPython holds already, which parsed JSON text reuses where a
        # new string would take 64 bytes of heap.
        app = __import__("firmware.apps." + app_name, None, None, ["main"])
        with open(getenv("LUCIOLE_BOARD_FILE") or "board.json") as f:
            definition = json.load(f)
        # the imports' transient objects go before the long-lived ones are made: collected
        # here, they leave room that a collection forced by a failing allocation did not find
        gc.collect()
        hal = __import__("boards.hal_" + definition["port"], None, None, ["Hal"]).Hal(definition)
        asyncio.run(_main(hal, app_name, app))
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as e:  # as a board's watchdog would: log, then start again
        if hal is None:
            # no HAL to log on or restart (a broken build, or no heap for the app): say why on
            # stderr, not on the link, and end as a crash
            sys.stderr.write("crash: %s: %s" % (type(e).__name__, e))  # the log line's words
            sys.stderr.write("\n")
            sys.exit(1)
        _crashed(hal.log, hal, e)
