# Li-Fi luminaire controller: loops the carousel of MAC frames the gateway prepared
# (docs/lifi-content.md) through its light, frame by frame with lifi_phy_encode.encode_slices.
#
# The gateway uploads a new carousel over the device link: COMMAND lifi-begin {version, frames,
# chip_rate_hz, line_code}, then `frames` LIFI frames of cbor [version, index, payload], then
# COMMAND lifi-commit {version}. Frames go to flash as they come, into the one of two slot files
# that is not on air, so the old carousel keeps shining until the commit; the commit is a single
# config-store write (atomic) naming the new file, and a rebooted luminaire resumes from it.
# COMMAND lifi-clear ends the broadcast (the exhibit's content was withdrawn).
# Only the frame being sent is in RAM (one slot, one chip buffer, both reused); where the light
# takes a frame in slices, the chip buffer holds one slice (256 bytes, not 2 to 10 KB).
import os
import struct

from protocols import cbor, lifi_phy_encode, link  # the PHY's encoding half only: less heap

try:
    from micropython import const
except ImportError:

    def const(x):
        return x


REQUIRES = ("link_uart", "lifi_tx")
RECEIVE_BYTES = link.MAX_BODY_BYTES  # the longest link body: a LIFI frame of MAX_PAYLOAD bytes
_SLOT_BYTES = const(1002)  # payload length (2 bytes) + lifi_phy_encode.MAX_PAYLOAD
_SLICE_BYTES = const(256)  # chip bytes encoded at a time when the light takes slices
_MAX_FRAMES = const(2048)  # a carousel of 1,000-byte frames this long fills a board's flash
_MISSING_SHOWN = const(8)  # ranges of indexes a refused commit names (then "...")
_IDLE_MS = const(250)  # nothing to send yet, or a bad slot: look again after this
_LEVEL_DEFAULT = const(50)  # not dimmed
_FILES = const(("lifi-a.dat", "lifi-b.dat"))  # the carousel on air, and the one coming
# the line codes by name, in the order of their numbers (lifi_phy_encode.MANCHESTER is 0)
_LINE_CODES = const(("manchester", "4b6b"))


def _int(args, key, low, high):
    value = args.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise ValueError("%s must be an integer from %d to %d, got %r" % (key, low, high, value))
    return value


def _missing(received, frames):
    # "3, 7-9, 12": the indexes not received, as ranges (the gateway resends them); "" if none.
    # No count after the "...": the gateway reads every number in the message as an index.
    ranges = []
    first = None
    for i in range(frames + 1):
        have = i == frames or received[i >> 3] & (1 << (i & 7))
        if not have and first is None:
            first = i
        elif have and first is not None:
            if len(ranges) == _MISSING_SHOWN:
                ranges.append("...")
                break
            ranges.append(str(first) if first == i - 1 else "%d-%d" % (first, i - 1))
            first = None
    return ", ".join(ranges)


class Luminaire:
    def __init__(self, hal, device):
        self._hal = hal
        self._device = device
        # on air: {"version", "frames", "file", "chip_rate_hz", "line_code"}, or None
        self.current = device.config.get("lifi")
        if self.current is not None:
            try:
                os.stat(hal.storage + self.current["file"])
            except OSError:
                device.log("error", "lifi: %s is gone, nothing to send" % self.current["file"])
                self.current = None
        self.level_pct = device.config.get("level_pct", _LEVEL_DEFAULT)
        self.sent = 0  # frames sent of the current carousel since boot or commit
        self._staging = None  # the lifi-begin args, plus "file"
        self._received = None  # bitmap of the staged indexes

    # -- console ------------------------------------------------------------------------------

    def begin(self, args):
        version = _int(args, "version", 0, 0xFFFFFFFF)
        frames = _int(args, "frames", 1, _MAX_FRAMES)
        light = self._hal.board["aliases"]["lifi_tx"]
        chip_rate_hz = _int(args, "chip_rate_hz", 1, light.get("max_chip_rate_hz", 1000000))
        line_code = args.get("line_code")
        if line_code not in _LINE_CODES:
            raise ValueError("line_code must be manchester or 4b6b, got %r" % (line_code,))
        on_air = self.current["file"] if self.current else None
        name = _FILES[1] if on_air == _FILES[0] else _FILES[0]
        open(self._hal.storage + name, "wb").close()  # a restarted upload starts afresh
        free = self._hal.storage_free()  # beside the carousel on air, which stays until commit
        if frames * _SLOT_BYTES > free:
            raise ValueError(
                "not enough flash for %d frames: %d KB needed, %d KB free"
                % (frames, frames * _SLOT_BYTES // 1024 + 1, free // 1024)
            )
        self._staging = {
            "version": version,
            "frames": frames,
            "file": name,
            "chip_rate_hz": chip_rate_hz,
            "line_code": line_code,
        }
        self._received = bytearray((frames + 7) // 8)
        return {"ok": True}

    def frame(self, body):
        # A LIFI frame: cbor [version, index, payload]. The link has ACKed it already, so a bad
        # one is only logged; the commit will name it missing.
        staging = self._staging
        try:
            version, index, payload = cbor.loads(body)
            if not isinstance(index, int) or not isinstance(payload, bytes):
                raise TypeError
        except (ValueError, TypeError):
            self._device.log("warning", "lifi: a LIFI frame that is not [version, index, payload]")
            return
        if staging is None or version != staging["version"]:
            return  # an upload since restarted, or the retransmission of a committed one
        if not (0 <= index < staging["frames"]) or len(payload) > lifi_phy_encode.MAX_PAYLOAD:
            self._device.log(
                "warning", "lifi: frame %r of %d bytes refused" % (index, len(payload))
            )
            return
        offset = index * _SLOT_BYTES
        try:
            with open(self._hal.storage + staging["file"], "r+b") as f:
                size = f.seek(0, 2)
                while size < offset:  # frames may come out of order: fill the gap with empty slots
                    size += f.write(bytes(min(_SLOT_BYTES, offset - size)))
                f.seek(offset)
                f.write(struct.pack(">H", len(payload)))
                f.write(payload)
        except OSError as e:  # a flash fault: the commit names the frame missing
            self._device.log("warning", "lifi: frame %d not stored: %s" % (index, e))
            return
        self._received[index >> 3] |= 1 << (index & 7)

    def commit(self, args):
        version = _int(args, "version", 0, 0xFFFFFFFF)
        staging = self._staging
        current = self.current
        if staging is None and current is not None and current["version"] == version:
            # a commit repeated after its reply was lost: already on air
            return {"ok": True, "version": version, "frames": current["frames"]}
        if staging is None or staging["version"] != version:
            raise ValueError("no upload of version %d under way (lifi-begin first)" % version)
        missing = _missing(self._received, staging["frames"])
        if missing:
            raise ValueError("missing frames " + missing)
        self._device.config.update({"lifi": staging})  # the swap: one atomic rename
        self.current = staging
        self.sent = 0
        self._staging = self._received = None
        if current is not None:
            open(self._hal.storage + current["file"], "wb").close()  # its flash is free again
        self._device.log(
            "info", "lifi: version %d on air, %d frames" % (version, staging["frames"])
        )
        return {"ok": True, "version": version, "frames": staging["frames"]}

    def clear(self, args):
        # lifi-clear: the exhibit's content was withdrawn; the light stops carrying it
        self._device.config.update({"lifi": None})
        self.current = self._staging = self._received = None
        for name in _FILES:
            open(self._hal.storage + name, "wb").close()
        self._device.log("info", "lifi: carousel cleared")
        return {"ok": True}

    def dim(self, args):
        level_pct = _int(args, "level_pct", lifi_phy_encode.LEVEL_MIN, lifi_phy_encode.LEVEL_MAX)
        self._device.config.update({"level_pct": level_pct})
        self.level_pct = level_pct  # from the next frame on
        return {"ok": True, "level_pct": level_pct}

    def status(self, args):
        current = self.current or {}
        staging = self._staging
        return {
            "version": current.get("version"),
            "frames": current.get("frames", 0),
            "sent": self.sent,
            "level_pct": self.level_pct,
            "chip_rate_hz": current.get("chip_rate_hz"),
            "line_code": current.get("line_code"),
            "staging": staging["version"] if staging else None,
        }

    # -- light --------------------------------------------------------------------------------

    async def run(self, hal):
        while self.current is None:  # nothing on air yet: no buffers while the first upload comes
            await hal.clock.sleep_ms(_IDLE_MS)
        light = hal.open("lifi_tx")
        slot = bytearray(_SLOT_BYTES)
        payloads = memoryview(slot)
        # A light that joins a frame's slices without a gap (host_sim's) gets the frame in slices
        # of one small buffer; any other gets it whole, the buffer grown to the largest frame.
        sliced = getattr(light, "slices", False)
        chips = bytearray(_SLICE_BYTES if sliced else 0)
        view = memoryview(chips)
        f = name = None
        index = 0
        while True:
            current = self.current
            if current is None:  # cleared: the light rests until the next carousel
                if f is not None:
                    f.close()
                    f = name = None
                await hal.clock.sleep_ms(_IDLE_MS)
                continue
            if current["file"] != name:  # a commit: the new carousel from its first frame
                if f is not None:
                    f.close()
                name = current["file"]
                f = open(self._hal.storage + name, "rb")
                index = 0
            if index >= current["frames"]:
                index = 0
            f.seek(index * _SLOT_BYTES)
            f.readinto(slot)
            n = struct.unpack_from(">H", slot, 0)[0]
            if n > lifi_phy_encode.MAX_PAYLOAD:  # a flash fault: skip the slot rather than crash
                index += 1
                await hal.clock.sleep_ms(_IDLE_MS)
                continue
            line_code = _LINE_CODES.index(current["line_code"])
            level_pct = self.level_pct  # a dim command while the frame is on air waits for the next
            left = lifi_phy_encode.frame_chips(n, line_code, level_pct) // 8  # chip bytes to send
            if len(chips) < left and not sliced:
                chips = view = None  # the old buffer is garbage before the new one is taken
                chips = bytearray(left)
                view = memoryview(chips)
            payload = payloads[2 : 2 + n]
            for used in lifi_phy_encode.encode_slices(chips, payload, line_code, level_pct):
                left -= used
                if left:
                    await light.transmit(view[:used], current["chip_rate_hz"], True)  # more
                else:
                    await light.transmit(view[:used], current["chip_rate_hz"])
            self.sent += 1
            index += 1


async def main(hal, device):
    luminaire = Luminaire(hal, device)
    device.command("lifi-begin", luminaire.begin)
    device.command("lifi-commit", luminaire.commit)
    device.command("lifi-status", luminaire.status)
    device.command("lifi-clear", luminaire.clear)
    device.command("dim", luminaire.dim)
    device.on_frame(link.LIFI, luminaire.frame)
    await luminaire.run(hal)
