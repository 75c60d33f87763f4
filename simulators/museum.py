"""The optical end of the simulated world: what the luminaires' light does in the gallery.

Museum(world) takes the world's light hook. Every frame of chips a luminaire sim board transmits
is logged (time, chips, how many were on, the content version it carries) and fed to the
visitors under that luminaire, each with an OpticalChannel (simulators/optical.py, their own
position and noise), a PhyReceiver (edge/lifi_rx.py) and a ContentAssembler
(edge/lifi_content.py), exactly the receiver a visitor carries. A visitor joins at a given
simulated time, in the middle of whatever frame is on air, and records when it has every object of
each content version, byte for byte as presented.

Frames are fed back to back: the few milliseconds between two frames (the board encoding the next
one) are left out, which changes nothing for a receiver that resynchronises on every preamble.
Visitors cost CPU (about a tenth of real time each at 1 Mchip/s): tests use one or two, at a few
hundred kchip/s.
"""

import random
from dataclasses import dataclass, field

from luciole.edge.lifi_content import ContentAssembler, ContentReplaced, ObjectComplete
from luciole.edge.lifi_rx import PhyReceiver
from luciole.protocols import lifi_mac, lifi_phy
from luciole.protocols.errors import DecodeError

from .optical import REFERENCE_DISTANCE_M, OpticalChannel

SAMPLES_PER_CHIP = 4  # the receiver's design point (docs/lifi-phy.md)


@dataclass(frozen=True)
class FrameSeen:
    """One frame a luminaire sent, as the world got it."""

    t_s: float  # simulated time it reached the world
    chip_rate_hz: int
    chips: int
    on_chips: int
    version: int | None  # the content version of its MAC frame; None if it decodes to none

    @property
    def level(self):
        """Fraction of the time the LED was on."""
        return self.on_chips / self.chips


@dataclass
class Visitor:
    name: str
    board: str  # the luminaire they stand under
    join_s: float
    distance_m: float = REFERENCE_DISTANCE_M
    angle_deg: float = 0.0
    seed: int = 0
    objects: dict = field(default_factory=dict)  # version -> {object id: bytes}
    complete_s: dict = field(default_factory=dict)  # version -> when every object was in
    versions: list = field(default_factory=list)  # directory versions, in the order heard
    frames_ok: int = 0
    _chip_rate_hz: int = 0
    _channel: OpticalChannel | None = None
    _receiver: PhyReceiver | None = None
    _assembler: ContentAssembler = field(default_factory=ContentAssembler)

    def hear(self, chips, chip_rate_hz, now_s):
        if chip_rate_hz != self._chip_rate_hz:  # the receiver locks on the new rate
            self._chip_rate_hz = chip_rate_hz
            self._channel = OpticalChannel(
                chip_rate_hz,
                SAMPLES_PER_CHIP,
                distance_m=self.distance_m,
                angle_deg=self.angle_deg,
                seed=self.seed,
            )
            self._receiver = PhyReceiver(chip_rate_hz * SAMPLES_PER_CHIP, chip_rate_hz)
        for payload in self._receiver.feed(self._channel.transmit(chips)):
            self.frames_ok += 1
            for event in self._assembler.feed(payload):
                self._on(event, now_s)

    def _on(self, event, now_s):
        if isinstance(event, ContentReplaced):
            self.versions.append(event.version)
            self.objects.setdefault(event.version, {})
        elif isinstance(event, ObjectComplete):
            version = self._assembler.directory.version
            self.objects[version][event.entry.id] = event.data
            if self._assembler.complete():
                self.complete_s.setdefault(version, now_s)


class Museum:
    def __init__(self, world, seed=0):
        self.world = world
        self.random = random.Random(seed)
        self.frames: dict[str, list[FrameSeen]] = {}  # board id -> frames, in order
        self.visitors: list[Visitor] = []
        world.light = self.light

    def visitor(self, board, join_s, distance_m=REFERENCE_DISTANCE_M, angle_deg=0.0):
        """A visitor who walks under `board` at simulated time join_s."""
        name = f"visitor-{len(self.visitors) + 1}"
        seed = self.random.randrange(2**32)
        visitor = Visitor(name, board, join_s, distance_m, angle_deg, seed)
        self.visitors.append(visitor)
        return visitor

    def visitors_joining(self, board, count, within_s):
        """count visitors joining at random (seeded) moments of the next within_s seconds, each
        at a random spot under the luminaire (2 to 3 m away, up to 30 degrees off axis)."""
        now_s = self.world.now_s()
        return [
            self.visitor(
                board,
                now_s + self.random.uniform(0, within_s),
                self.random.uniform(2.0, 3.0),
                self.random.uniform(0, 30),
            )
            for _ in range(count)
        ]

    def light(self, board, chips, chip_rate_hz):
        now_s = self.world.now_s()
        chips = bytes(chips)
        on_chips = int.from_bytes(chips, "big").bit_count()
        self.frames.setdefault(board.id, []).append(
            FrameSeen(now_s, chip_rate_hz, 8 * len(chips), on_chips, _version(chips))
        )
        for visitor in self.visitors:
            if visitor.board != board.id or now_s < visitor.join_s:
                continue
            heard = chips
            if visitor._channel is None:  # arrives in the middle of this frame
                heard = chips[self.random.randrange(len(chips)) :]
            visitor.hear(heard, chip_rate_hz, now_s)


def _version(chips):
    try:
        return lifi_mac.decode(lifi_phy.decode_frame(chips)).version
    except DecodeError:
        return None
