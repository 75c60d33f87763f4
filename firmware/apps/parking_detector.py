# Bay occupancy from an in-ground magnetometer: pure logic, the same file on the board
# (MicroPython) and in the simulators and benches (CPython). No I/O, no clock: the caller feeds
# samples with the time since the previous one and asks when to sample next.
#
# Score = |d|, d = sample - baseline (the empty bay's field, per axis), in uT. States and duty
# cycle:
#   vacant   --sample score >= trigger--> burst of fast samples --mean >= on--> occupied
#   occupied --sample below its level---> burst of fast samples --mean < off--> vacant
# on > off is the hysteresis; judging a burst's mean (noise / 2 with 4 samples) means a noisy
# sample costs a short burst, never a transition.
# The baseline is wrong by whatever a neighbour's car added at calibration, plus temperature
# drift, which together reach the threshold. So the detector re-learns it while vacant: it
# follows settled fields slowly, and a weak field (under _WEAK_UT) that crosses the threshold
# becomes the baseline at once when it crept there (within _STEP_UT of the recent field) or when
# no vehicle's manoeuvre brought it. A car driving over the sensor passes its engine and axles
# close above it: the field changes fast and peaks well above its resting level (_MANOEUVRE_UT
# and up), where a neighbour's car, seen from the side, changes it smoothly by a few uT. A
# departure is judged once the field rests again, against the car's own field (vector), not only
# its size. The calibrated baseline is kept: a field that comes to rest clearly nearer it than
# the field before the manoeuvre is going home (a missed car leaving), never a car coming in.
import math
import struct

try:
    from micropython import const
except ImportError:

    def const(x):
        return x


IDLE_MS = const(2000)  # between samples while nothing changes
_CONFIRM_MS = const(300)  # between samples of a confirmation burst
_CONFIRM_SAMPLES = const(4)
WINDOW = const(8)  # recent samples kept for calibration (parking_calibrate.py)
_EXTRA_LOOKS = const(2)  # more bursts before a weak field with no manoeuvre becomes the baseline
_SETTLE_MS = const(10000)  # after an arrival, the car may still be coming to rest
# Reporting policy, shared by the app and the bench that counts its radio use: every change is
# advertised REPORT_REPEATS times (the packet id lets the gateway drop the copies), and the
# current state every HEARTBEAT_S.
REPORT_REPEATS = const(3)
HEARTBEAT_S = const(600)
# Thresholds and time constants (what they do: the comment at the top). Whole ones are ints:
# const() inlines an int, where every float is an object in the board's heap.
_ON_UT = const(3.5)
_OFF_UT = const(3)
_TRIGGER_UT = const(2.8)
_RELEASE_UT = const(1)
_REST_RATIO = const(0.25)
_STEP_UT = const(2)
_WEAK_UT = const(6)
_MANOEUVRE_UT = const(5)
_OVER_UT = const(2.3)
_TRACK_TAU_S = const(3600)
_RECENT_TAU_S = const(120)
SAMPLE = const("<3d")  # a sample in the window: x, y, z
SAMPLE_BYTES = const(24)


class Detector:
    """Occupancy of one bay. baseline: (x, y, z) uT of the empty bay, None until calibrated."""

    def __init__(self, baseline=None):
        self.occupied = False
        self.changes = 0
        self.samples = 0
        # the last WINDOW samples as a ring of x y z float64 (SAMPLE: exact, and unboxed where a
        # list of tuples would box every value); the oldest at samples % WINDOW once full
        self.window = bytearray(SAMPLE_BYTES * WINDOW)
        self.set_baseline(baseline)

    # ---- feeding -----------------------------------------------------------------------

    def feed(self, dt_ms, x, y, z):
        """One sample, dt_ms after the previous one. True when the occupancy just changed."""
        struct.pack_into(SAMPLE, self.window, self.samples % WINDOW * SAMPLE_BYTES, x, y, z)
        self.samples += 1
        if self.baseline is None:
            return False
        bx, by, bz = self.baseline
        dx, dy, dz = x - bx, y - by, z - bz
        if self.occupied and self._settle_ms > 0:
            self._settle_ms -= dt_ms
        score = _size(dx, dy, dz)
        # a fast change between two samples: a vehicle moving close over the sensor
        if self._last is not None and abs(score - self._last) > _STEP_UT:
            self._moved_ms = _SETTLE_MS
        elif self._moved_ms > 0:
            self._moved_ms -= dt_ms
        self._last = score
        if self._burst:
            return self._confirm(dx, dy, dz, score)
        if self.occupied:
            # the parked car's settled level (its level while it still moves)
            rest = self._rest or self._level
            cx, cy, cz = self._car
            # below that level, or away from the car's field (a departure may keep its size)
            if score < rest - _RELEASE_UT or _size(dx - cx, dy - cy, dz - cz) > _ON_UT:
                self._start_burst(self._peak)
            elif score > rest + _RELEASE_UT:
                self._level = max(self._level, score)  # manoeuvring: not its resting level
            else:  # its own level: a slow average, as a low level is mostly noise
                self._level = self._rest = rest + (score - rest) / 4
            return False
        rx, ry, rz = self._recent  # the field of the last minutes while vacant, whatever it scores
        a = dt_ms / 1000 / _RECENT_TAU_S
        a = 1.0 if a > 1.0 else a
        self._recent = (rx + a * (x - rx), ry + a * (y - ry), rz + a * (z - rz))
        if score >= _TRIGGER_UT:
            rejected = self._rejected
            # the same standing field that a burst already turned down: not worth another
            if (
                rejected is None
                or _size(dx - rejected[0], dy - rejected[1], dz - rejected[2]) > _TRIGGER_UT / 2
            ):
                self._looks = 0
                self._start_burst(score)
            return False
        self._rejected = None
        # settled (close to the recent field): the empty bay's field, whatever its level
        if _size(x - rx, y - ry, z - rz) < _STEP_UT:
            a = dt_ms / 1000 / _TRACK_TAU_S
            a = 1.0 if a > 1.0 else a
            self.baseline = (bx + a * dx, by + a * dy, bz + a * dz)
        return False

    def next_ms(self):
        """How long to sleep before the next sample."""
        return _CONFIRM_MS if self._burst else IDLE_MS

    def set_baseline(self, baseline):
        """A new baseline (x, y, z) uT, or None: the bay starts vacant, as the empty bay's field."""
        self.baseline = None if baseline is None else tuple(map(float, baseline))
        self.occupied = False
        self._level = self._rest = 0.0
        self._car = None  # the parked car's field (deviation) at its last burst
        self._rejected = None
        self._burst = 0
        self._sum = [0.0, 0.0, 0.0]
        self._recent = self._calib = self.baseline
        self._looks = 0
        self._peak = 0.0
        self._settle_ms = 0
        self._moved_ms = 0
        self._last = None

    # ---- inside ------------------------------------------------------------------------

    def _start_burst(self, peak):
        self._burst = _CONFIRM_SAMPLES
        self._peak = peak
        self._sum = [0.0, 0.0, 0.0]

    def _confirm(self, dx, dy, dz, score):
        s = self._sum
        s[0] += dx
        s[1] += dy
        s[2] += dz
        if score > self._peak:
            self._peak = score
        if self.occupied and score > self._level:
            self._level = score  # a manoeuvre over the sensor
        self._burst -= 1
        if self._burst:
            return False
        mean = (s[0] / _CONFIRM_SAMPLES, s[1] / _CONFIRM_SAMPLES, s[2] / _CONFIRM_SAMPLES)
        if self.occupied and _apart((dx, dy, dz), mean) > _STEP_UT:
            # still moving (a car leaving over the sensor): judge the field once it rests
            self._start_burst(self._peak)
            return False
        score = _size(mean[0], mean[1], mean[2])
        bx, by, bz = self.baseline
        field = (bx + mean[0], by + mean[1], bz + mean[2])
        recent = self._recent
        back = _apart(field, recent)  # from what the empty bay read before the car came
        empty = min(back, score) < _RELEASE_UT  # back there, or at the baseline
        # clearly nearer the calibrated empty bay than that: going home, as when a car that the
        # detector had missed (taken for the empty bay) drives off over the sensor, a manoeuvre
        # that looks like one coming in
        home = _apart(field, self._calib) < _apart(recent, self._calib) - _RELEASE_UT / 2
        if self.occupied:
            rest = self._rest or self._level
            if self._settle_ms > 0 and self._peak >= _MANOEUVRE_UT:
                # a car that just drove in over the sensor, coming to rest (a weak car may rest
                # under the thresholds): gone only if the field is back where it was before, or
                # at the baseline, or going home
                gone = empty or home
            else:
                # gone: below the off threshold and clearly below the parked car's level, or
                # most of its field gone, or half of it after a manoeuvre over the sensor
                # (neighbours' leakage may hold the rest up)
                gone = score < _OFF_UT and score < rest - _RELEASE_UT
                gone = gone or score < _REST_RATIO * rest
                moved = self._level > rest + _MANOEUVRE_UT
                gone = gone or (score < rest / 2 and moved)
                # or, after a manoeuvre over the sensor, resting far from where the car rested
                # and no stronger (neighbours' leakage may keep its size; a stronger field is
                # another car coming in)
                far = _apart(mean, self._car) > _ON_UT
                gone = gone or (moved and far and score < rest + _ON_UT)
                # or back where the empty bay read before the car came, or going home
                gone = gone or empty or home
                # a weak car (resting under _WEAK_UT) leaves over the sensor, fast, where a
                # neighbour's coming or going changes its field smoothly: unless the field is
                # back at the baseline, it is gone only after a fast change
                gone = gone and (self._moved_ms > 0 or rest >= _WEAK_UT or score < _RELEASE_UT)
            if not gone:
                self._level = self._rest = score  # still there: this is its level now
                self._car = mean
                return False
            self.occupied = False
            self._moved_ms = 0  # its own departure's movement brings no weak car
            self._rejected = mean  # a new arrival must move the field away from here
            if self._level - score >= _ON_UT:
                # a clear departure: what is left is the empty bay (and the neighbours), so a
                # field that stays here must not bring the car back
                self._recent = field
            else:  # a small drop (a weak car's level dipping?): judge arrivals from the baseline
                self._recent = self.baseline
        else:
            # a car right over the sensor strengthens the vertical field (a neighbour's car, seen
            # from the side, weakens it): after a fast change, a weak car resting low
            over = self._moved_ms > 0 and 2 * (mean[2] if bz > 0 else -mean[2]) > score
            if score < (_OVER_UT if over else _ON_UT):
                self._rejected = mean
                return False
            if home or (score < _WEAK_UT and back < _STEP_UT):
                # going home (above), or the field crept over the threshold with no vehicle's
                # manoeuvre (drift, or a neighbour's leakage in the baseline): the empty bay
                # reads this now
                self.baseline = self._recent = field
                return False
            if (
                score < _WEAK_UT
                and (self._peak < _MANOEUVRE_UT or self._moved_ms <= 0)
                and not over
            ):
                # a weak field that no vehicle's manoeuvre brought, no peak or no fast change (a
                # neighbour coming or going changes this bay's field smoothly; noise lifts single
                # readings of a standing field): look again, as a weak car may still be on its
                # way in, then take it for the empty bay's field
                if self._looks < _EXTRA_LOOKS:
                    self._looks += 1
                    self._start_burst(self._peak)
                    return False
                self.baseline = self._recent = field
                return False
            self.occupied = True
            self._level = score
            self._settle_ms = _SETTLE_MS
            self._rest = 0.0  # unknown while the car is still manoeuvring
            self._car = mean
            self._rejected = None
        self.changes += 1
        return True


def _size(dx, dy, dz):
    return math.sqrt(dx * dx + dy * dy + dz * dz)


def _apart(a, b):
    """The distance between two fields (x, y, z)."""
    return _size(a[0] - b[0], a[1] - b[1], a[2] - b[2])
