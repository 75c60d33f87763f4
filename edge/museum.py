"""The gateway's museum service: exhibit content from the CMS onto the luminaires' Li-Fi carousels.

- A luminaire is assigned to an exhibit by `exhibit` on its `[[devices]]` entry; `[museum]` sets
  the chip rate, line code and light level of all of them. Only exhibits assigned here are
  followed: another gateway on the broker serves the others.
- The CMS publishes the manifest and the objects retained (museum_content.ExhibitContent checks
  them). Content that cannot be broadcast is refused with its one-line reason on
  museum/exhibits/{exhibit}/broadcast (state "rejected") and in the log; the luminaires keep
  what they broadcast. Deleting the retained manifest (an empty payload) withdraws the content:
  the luminaires are cleared (COMMAND lifi-clear) and go dark.
- Complete content is prepared (RaptorQ carousel, in a thread) and pushed to every connected
  luminaire of the exhibit over its serial link: COMMAND lifi-begin, the frames as LIFI frames
  (body CBOR [version, index, payload]), COMMAND lifi-commit. The luminaire swaps carousels only
  at the commit, so the light never goes dark; a commit answered "missing frames ..." gets those
  frames again, anything else starts over. A luminaire that says HELLO is asked lifi-status and
  gets the current content unless it carries it already.
- The state is published retained on museum/exhibits/{exhibit}/broadcast after every change:
  "waiting" (for the manifest, objects or a luminaire), "loading", "on-air" or "rejected".
"""

import asyncio
import contextlib
import json
import logging
import re

from luciole.protocols import cbor, lifi_phy, link
from luciole.protocols.errors import DecodeError

from .commands import CommandFailed
from .museum_content import ContentError, ExhibitContent

log = logging.getLogger("luciole.museum")

WINDOW_WAIT_S = 0.25  # a notice normally comes sooner: this only bounds a missed wake-up
BEGIN_ATTEMPTS = 2  # loads started from scratch before a luminaire is marked in error
COMMIT_ATTEMPTS = 16  # commits per load while each names other missing frames (lists may be cut)
_MISSING = re.compile(r"missing frames\b(.*)", re.IGNORECASE)


def missing_frames(error, frames):
    """The frame indices an error "missing frames 3, 7-9" names (below `frames`); None when the
    error says something else or names none."""
    found = _MISSING.search(error)
    if not found:
        return None
    indices = set()
    for first, last in re.findall(r"(\d+)(?:\s*-\s*(\d+))?", found.group(1)):
        indices.update(range(int(first), min(int(last or first), frames - 1) + 1))
    return sorted(indices) or None


class _Luminaire:
    def __init__(self, device_id):
        self.id = device_id
        self.version = None  # what its carousel holds, as it last said
        self.state = "offline"  # until it says HELLO
        self.reason = None
        self.task = None  # the greeting or load under way
        self.loading = None  # the version the load under way brings
        self.phy = None  # (chip_rate_hz, line_code) its carousel is sent with


class _Exhibit:
    def __init__(self, exhibit, luminaires):
        self.content = ExhibitContent(exhibit)
        self.luminaires = luminaires
        self.rejected = None  # the reason the last content was refused, until new content
        self.withdrawn = False  # the CMS deleted the manifest: the luminaires must go dark


class Museum:
    def __init__(self, gateway):
        self.gateway = gateway
        self.settings = gateway.config.museum
        self.luminaires = {}
        by_exhibit = {}
        for device in gateway.config.devices:
            if device.exhibit is not None:
                self.luminaires[device.id] = luminaire = _Luminaire(device.id)
                by_exhibit.setdefault(device.exhibit, []).append(luminaire)
        self.exhibits = {name: _Exhibit(name, lums) for name, lums in by_exhibit.items()}
        self._exhibit_of = {lum.id: ex for ex in self.exhibits.values() for lum in ex.luminaires}
        self._window = asyncio.Event()  # set by every delivery notice from a serial link

    # -- from the broker ------------------------------------------------------------------------

    async def subscribe(self, client):
        topics = self.gateway.topics
        for name in self.exhibits:
            content = topics.build("exhibit_content", name)
            await client.subscribe(content, qos=1)
            await client.subscribe(content.removesuffix("content") + "objects/+", qos=1)
        for exhibit in self.exhibits.values():
            await self._publish(exhibit)

    async def on_message(self, message) -> bool:
        """Takes a message if it is museum content (True), else leaves it (False)."""
        try:
            name, ids = self.gateway.topics.parse(str(message.topic))
        except DecodeError:
            return False
        if name not in ("exhibit_content", "exhibit_object"):
            return False
        exhibit = self.exhibits.get(ids[0])
        if exhibit is None:
            return True  # another gateway's exhibit
        if name == "exhibit_content" and not message.payload:
            self._withdraw(exhibit)
            await self._publish(exhibit)
            return True
        try:
            if name == "exhibit_content":
                exhibit.content.set_manifest(message.payload)
                exhibit.withdrawn = False
            else:
                exhibit.content.put_object(ids[1], message.payload)
            exhibit.rejected = None
            await self._prepare(exhibit)
        except ContentError as e:
            exhibit.rejected = str(e)
            log.warning("exhibit %s: rejected: %s", exhibit.content.exhibit, e)
        await self._publish(exhibit)
        return True

    async def _prepare(self, exhibit):
        try:
            # RaptorQ over up to a megabyte: off the event loop, which keeps the links served
            prepared = await asyncio.to_thread(exhibit.content.prepare, lifi_phy.MAX_PAYLOAD)
        except ImportError as e:
            raise ContentError(
                f"this gateway cannot prepare Li-Fi content ({e}): install luciole[lifi]"
            ) from None
        if prepared is not None:
            log.info(
                "exhibit %s: version %d prepared, %d frames",
                exhibit.content.exhibit,
                prepared.manifest.version,
                len(prepared.frames),
            )
        self._load_all(exhibit)

    # -- to the luminaires ----------------------------------------------------------------------

    def hello(self, device):
        """A luminaire (re)started or reconnected: see what it carries, load it if needed."""
        luminaire = self.luminaires.get(device.id)
        if luminaire is None:
            return
        self._start(luminaire, self._greet(luminaire))

    def notice(self, port, event):
        self._window.set()

    def _current(self, exhibit):
        """The prepared broadcast of the manifest in force, or None."""
        content = exhibit.content
        prepared = content.broadcast
        if prepared is None or content.manifest is None:
            return None
        return prepared if prepared.manifest.version == content.manifest.version else None

    def _load_all(self, exhibit):
        prepared = self._current(exhibit)
        if prepared is None:
            return
        version = prepared.manifest.version
        for luminaire in exhibit.luminaires:
            busy = luminaire.task is not None and luminaire.loading == version
            if not (self._carries(luminaire, version) or busy) and self._port(luminaire):
                self._start(luminaire, self._load(luminaire, prepared))

    def _carries(self, luminaire, version):
        """Whether the luminaire broadcasts this version with the [museum] settings (changed
        settings send the same content again)."""
        settings = self.settings
        phy = (settings.chip_rate_hz, settings.line_code)
        return luminaire.version == version and luminaire.phy == phy

    def _start(self, luminaire, job):
        if luminaire.task is not None:
            luminaire.task.cancel()  # a newer version or a restarted luminaire: start over
        luminaire.task = asyncio.create_task(job)

    def _port(self, luminaire):
        device = self.gateway.registry.devices.get(luminaire.id)
        if device is None or not device.online:
            return None
        port = self.gateway.port_for(device)
        return port if port is not None and port.writer is not None else None

    async def _ask(self, luminaire, command, args=None):
        port = self._port(luminaire)
        if port is None:
            raise CommandFailed(f"{luminaire.id} is not connected")
        return await self.gateway.commands.ask(port, luminaire.id, command, args or {})

    async def _greet(self, luminaire):
        exhibit = self._exhibit_of[luminaire.id]
        try:
            status = await self._ask(luminaire, "lifi-status")
            if not isinstance(status, dict):
                raise CommandFailed(f"lifi-status answered {status!r}")
            luminaire.version = status.get("version")
            luminaire.state = "idle" if luminaire.version is None else "on-air"
            luminaire.reason = None
            luminaire.phy = (status.get("chip_rate_hz"), status.get("line_code"))
            if status.get("level_pct") != self.settings.level_pct:
                await self._ask(luminaire, "dim", {"level_pct": self.settings.level_pct})
        except CommandFailed as e:
            self._failed(luminaire, e)
        await self._publish(exhibit)
        prepared = self._current(exhibit)
        if prepared is not None and not self._carries(luminaire, prepared.manifest.version):
            luminaire.task = None  # this greeting hands over to the load
            self._start(luminaire, self._load(luminaire, prepared))
        elif exhibit.withdrawn and luminaire.version is not None:
            luminaire.task = None  # this greeting hands over to the clearing
            self._start(luminaire, self._clear(luminaire))

    def _withdraw(self, exhibit):
        log.info("exhibit %s: content withdrawn by the CMS", exhibit.content.exhibit)
        exhibit.content.withdraw()
        exhibit.withdrawn, exhibit.rejected = True, None
        for luminaire in exhibit.luminaires:
            if self._port(luminaire):
                self._start(luminaire, self._clear(luminaire))

    async def _clear(self, luminaire):
        try:
            await self._ask(luminaire, "lifi-clear")
            luminaire.version, luminaire.state, luminaire.reason = None, "idle", None
            log.info("%s: cleared, its content withdrawn", luminaire.id)
        except CommandFailed as e:
            self._failed(luminaire, e)
        luminaire.task = None
        await self._publish(self._exhibit_of[luminaire.id])

    async def _load(self, luminaire, prepared):
        exhibit = self._exhibit_of[luminaire.id]
        version, frames = prepared.manifest.version, prepared.frames
        luminaire.loading, luminaire.state, luminaire.reason = version, "loading", None
        await self._publish(exhibit)
        settings = self.settings
        begin = {
            "version": version,
            "frames": len(frames),
            "chip_rate_hz": settings.chip_rate_hz,
            "line_code": settings.line_code,
        }
        try:
            for _ in range(BEGIN_ATTEMPTS):
                await self._ask(luminaire, "lifi-begin", begin)
                await self._send_frames(luminaire, version, frames, range(len(frames)))
                if await self._commit(luminaire, version, frames):
                    break
                log.warning("%s: version %d incomplete, loading again", luminaire.id, version)
            else:
                raise CommandFailed(
                    f"version {version} still incomplete after {BEGIN_ATTEMPTS} loads"
                )
            await self._ask(luminaire, "dim", {"level_pct": settings.level_pct})
            luminaire.version, luminaire.state = version, "on-air"
            luminaire.phy = (settings.chip_rate_hz, settings.line_code)
            log.info("%s: version %d on air (%d frames)", luminaire.id, version, len(frames))
        except CommandFailed as e:
            self._failed(luminaire, e)
        luminaire.task = luminaire.loading = None
        await self._publish(exhibit)

    async def _commit(self, luminaire, version, frames):
        """True once the luminaire took the version; False when it should be loaded again."""
        resent = None
        for _ in range(COMMIT_ATTEMPTS):
            try:
                await self._ask(luminaire, "lifi-commit", {"version": version})
                return True
            except CommandFailed as e:
                missing = missing_frames(str(e), len(frames))
                if missing is None or missing == resent:  # resending would not help
                    return False
                resent = missing
                log.warning("%s: resending %d missing frames", luminaire.id, len(missing))
                await self._send_frames(luminaire, version, frames, missing)
        return False

    async def _send_frames(self, luminaire, version, frames, indices):
        """LIFI frames, as fast as the link's window lets them go."""
        for index in indices:
            body = cbor.dumps([version, index, frames[index]])
            while True:
                port = self._port(luminaire)
                if port is None:
                    raise CommandFailed(f"{luminaire.id} went away during the load")
                if port.send(link.LIFI, body):
                    break
                self._window.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._window.wait(), WINDOW_WAIT_S)

    def _failed(self, luminaire, error):
        luminaire.state, luminaire.reason = "error", str(error)
        log.warning("%s: %s", luminaire.id, error)

    # -- for the city ---------------------------------------------------------------------------

    def summary(self, exhibit):
        """The broadcast state of one exhibit (docs/lifi-content.md)."""
        content = exhibit.content
        prepared = self._current(exhibit)
        luminaires = []
        for lum in exhibit.luminaires:
            state = lum.state if self._port(lum) or lum.state == "error" else "offline"
            entry = {"id": lum.id, "version": lum.version, "state": state}
            if lum.reason is not None:
                entry["reason"] = lum.reason
            luminaires.append(entry)
        if exhibit.rejected is not None:
            on_air = content.broadcast
            summary = {
                "exhibit": content.exhibit,
                "version": on_air.manifest.version if on_air else None,
                "state": "rejected",
                "reason": exhibit.rejected,
            }
        elif exhibit.withdrawn:
            reason = "the CMS withdrew the content (its manifest was deleted)"
            summary = {"exhibit": content.exhibit, "state": "waiting", "reason": reason}
        elif prepared is None:
            summary = content.status()
        else:
            summary = dict(prepared.summary)
            states = {lum["state"] for lum in luminaires if lum["version"] == summary["version"]}
            if any(lum["state"] == "loading" for lum in luminaires):
                summary["state"] = "loading"
            elif "on-air" in states:
                summary["state"] = "on-air"
            else:
                summary["state"] = "waiting"
                summary["reason"] = "no luminaire of the exhibit carries it yet"
        summary.update(
            gateway=self.gateway.id,
            chip_rate_hz=self.settings.chip_rate_hz,
            line_code=self.settings.line_code,
            level_pct=self.settings.level_pct,
            luminaires=luminaires,
        )
        return summary

    async def _publish(self, exhibit):
        topic = self.gateway.topics.build("exhibit_broadcast", exhibit.content.exhibit)
        payload = json.dumps(self.summary(exhibit), separators=(",", ":")).encode()
        await self.gateway.uplink.retain(topic, payload)
