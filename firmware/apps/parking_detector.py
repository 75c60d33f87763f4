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
# follows settled fields slowly, and a weak field (under weak_ut) that crosses the threshold
# becomes the baseline at once when it crept there (within step_ut of the recent field) or when
# no vehicle's manoeuvre brought it. A car driving over the sensor passes its engine and axles
# close above it: the field changes fast and peaks well above its resting level (manoeuvre_ut
# and up), where a neighbour's car, seen from the side, changes it smoothly by a few uT. A
# departure is judged once the field rests again, against the car's own field (vector), not only
# its size. The calibrated baseline is kept: a field that comes to rest clearly nearer it than
# the field before the manoeuvre is going home (a missed car leaving), never a car coming in.
import math

try:
    from micropython import const
except ImportError:

    def const(x):
        return x


IDLE_MS = const(2000)  # between samples while nothing changes
CONFIRM_MS = const(300)  # between samples of a confirmation burst
CONFIRM_SAMPLES = const(4)
WINDOW = const(8)  # recent samples kept for calibration
EXTRA_LOOKS = const(2)  # more bursts before a weak field with no manoeuvre becomes the baseline
SETTLE_MS = const(10000)  # after an arrival, the car may still be coming to rest
# Reporting policy, shared by the app and the bench that counts its radio use: every change is
# advertised REPORT_REPEATS times (the packet id lets the gateway drop the copies), and the
# current state every HEARTBEAT_S.
REPORT_REPEATS = const(3)
HEARTBEAT_S = const(600)


class CalibrationError(ValueError):
    """Calibration refused; the message tells the technician why and what to do."""


class Detector:
    """Occupancy of one bay. baseline: (x, y, z) uT of the empty bay, None until calibrated."""

    def __init__(
        self,
        baseline=None,
        on_ut=3.5,
        off_ut=3.0,
        trigger_ut=2.8,
        track_tau_s=3600.0,
        noise_limit_ut=1.5,
        earth_h_ut=21.1,
        earth_z_ut=-42.9,
        earth_tolerance_ut=12.0,
        release_ut=1.0,
        rest_ratio=0.25,
        step_ut=2.0,
        recent_tau_s=120.0,
        weak_ut=6.0,
        manoeuvre_ut=5.0,
        over_ut=2.3,
    ):
        self.on_ut = on_ut
        self.off_ut = off_ut
        self.release_ut = release_ut
        self.rest_ratio = rest_ratio
        self.trigger_ut = trigger_ut
        self.track_tau_s = track_tau_s
        self.noise_limit_ut = noise_limit_ut
        self.earth = (earth_h_ut, earth_z_ut)
        self.earth_tolerance_ut = earth_tolerance_ut
        self.step_ut = step_ut
        self.recent_tau_s = recent_tau_s
        self.weak_ut = weak_ut
        self.manoeuvre_ut = manoeuvre_ut
        self.over_ut = over_ut
        self.occupied = False
        self.changes = 0
        self.samples = 0
        self._window = []
        self._set_baseline(baseline)

    # ---- feeding -----------------------------------------------------------------------

    def feed(self, dt_ms, x, y, z):
        """One sample, dt_ms after the previous one. True when the occupancy just changed."""
        self.samples += 1
        if len(self._window) >= WINDOW:
            self._window.pop(0)
        self._window.append((x, y, z))
        if self.baseline is None:
            return False
        bx, by, bz = self.baseline
        dx, dy, dz = x - bx, y - by, z - bz
        if self.occupied and self._settle_ms > 0:
            self._settle_ms -= dt_ms
        score = _size(dx, dy, dz)
        # a fast change between two samples: a vehicle moving close over the sensor
        if self._last is not None and abs(score - self._last) > self.step_ut:
            self._moved_ms = SETTLE_MS
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
            if score < rest - self.release_ut or _size(dx - cx, dy - cy, dz - cz) > self.on_ut:
                self._start_burst(self._peak)
            elif score > rest + self.release_ut:
                self._level = max(self._level, score)  # manoeuvring: not its resting level
            else:  # its own level: a slow average, as a low level is mostly noise
                self._level = self._rest = rest + (score - rest) / 4
            return False
        rx, ry, rz = self._recent  # the field of the last minutes while vacant, whatever it scores
        a = dt_ms / 1000 / self.recent_tau_s
        a = 1.0 if a > 1.0 else a
        self._recent = (rx + a * (x - rx), ry + a * (y - ry), rz + a * (z - rz))
        if score >= self.trigger_ut:
            rejected = self._rejected
            # the same standing field that a burst already turned down: not worth another
            if (
                rejected is None
                or _size(dx - rejected[0], dy - rejected[1], dz - rejected[2]) > self.trigger_ut / 2
            ):
                self._looks = 0
                self._start_burst(score)
            return False
        self._rejected = None
        # settled (close to the recent field): the empty bay's field, whatever its level
        if _size(x - rx, y - ry, z - rz) < self.step_ut:
            a = dt_ms / 1000 / self.track_tau_s
            a = 1.0 if a > 1.0 else a
            self.baseline = (bx + a * dx, by + a * dy, bz + a * dz)
        return False

    def next_ms(self):
        """How long to sleep before the next sample."""
        return CONFIRM_MS if self._burst else IDLE_MS

    def score(self, x, y, z):
        """The car score of a sample against the baseline (uT); None before calibration."""
        if self.baseline is None:
            return None
        bx, by, bz = self.baseline
        return _size(x - bx, y - by, z - bz)

    # ---- calibration -------------------------------------------------------------------

    def calibrate(self, force=False):
        """Makes the mean of the recent samples the empty bay's baseline; returns it. Raises
        CalibrationError, saying why, when the bay does not look empty or the signal is noisy.
        force skips only the "vehicle detected" check, for a technician standing at an empty bay
        that the sensor wrongly believes occupied."""
        n = len(self._window)
        if n < WINDOW:
            raise CalibrationError(
                "not enough readings yet (%d of %d): wait %d s and try again"
                % (n, WINDOW, (WINDOW - n) * IDLE_MS // 1000 + 1)
            )
        mean = [0.0, 0.0, 0.0]
        for sample in self._window:
            for k in range(3):
                mean[k] += sample[k] / n
        worst, axis = 0.0, 0
        for k in range(3):
            spread = math.sqrt(sum((s[k] - mean[k]) ** 2 for s in self._window) / (n - 1))
            if spread > worst:
                worst, axis = spread, k
        if worst > self.noise_limit_ut:
            raise CalibrationError(
                "signal too noisy: %.1f uT on %s, limit %.1f uT (a vehicle moving nearby or "
                "electrical interference): wait for a quiet street and try again"
                % (worst, "xyz"[axis], self.noise_limit_ut)
            )
        if self.occupied and not force:
            raise CalibrationError(
                "a vehicle is detected over the sensor: calibrate with the bay empty (if it is "
                "empty, calibrate with force)"
            )
        h = math.sqrt(mean[0] ** 2 + mean[1] ** 2)
        off = math.sqrt((h - self.earth[0]) ** 2 + (mean[2] - self.earth[1]) ** 2)
        if off > self.earth_tolerance_ut:
            raise CalibrationError(
                "the field (horizontal %.1f uT, vertical %.1f uT) is %.0f uT away from Earth's "
                "field here (%.1f, %.1f): a vehicle or steel over the sensor? Clear the bay and "
                "try again" % (h, mean[2], off, self.earth[0], self.earth[1])
            )
        self._set_baseline((mean[0], mean[1], mean[2]))
        return self.baseline

    def status(self):
        """What the console's parking-status shows."""
        return {
            "state": "occupied" if self.occupied else "vacant",
            "confirming": self._burst > 0,
            "calibrated": self.baseline is not None,
            "baseline_ut": None if self.baseline is None else [round(v, 2) for v in self.baseline],
            "samples": self.samples,
            "changes": self.changes,
        }

    # ---- inside ------------------------------------------------------------------------

    def _set_baseline(self, baseline):
        self.baseline = None if baseline is None else tuple(float(v) for v in baseline)
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

    def _start_burst(self, peak=0.0):
        self._burst = CONFIRM_SAMPLES
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
        mean = (s[0] / CONFIRM_SAMPLES, s[1] / CONFIRM_SAMPLES, s[2] / CONFIRM_SAMPLES)
        if self.occupied and _apart((dx, dy, dz), mean) > self.step_ut:
            # still moving (a car leaving over the sensor): judge the field once it rests
            self._start_burst(self._peak)
            return False
        score = _size(mean[0], mean[1], mean[2])
        bx, by, bz = self.baseline
        field = (bx + mean[0], by + mean[1], bz + mean[2])
        recent = self._recent
        back = _apart(field, recent)  # from what the empty bay read before the car came
        empty = min(back, score) < self.release_ut  # back there, or at the baseline
        # clearly nearer the calibrated empty bay than that: going home, as when a car that the
        # detector had missed (taken for the empty bay) drives off over the sensor, a manoeuvre
        # that looks like one coming in
        home = _apart(field, self._calib) < _apart(recent, self._calib) - self.release_ut / 2
        if self.occupied:
            rest = self._rest or self._level
            if self._settle_ms > 0 and self._peak >= self.manoeuvre_ut:
                # a car that just drove in over the sensor, coming to rest (a weak car may rest
                # under the thresholds): gone only if the field is back where it was before, or
                # at the baseline, or going home
                gone = empty or home
            else:
                # gone: below the off threshold and clearly below the parked car's level, or
                # most of its field gone, or half of it after a manoeuvre over the sensor
                # (neighbours' leakage may hold the rest up)
                gone = score < self.off_ut and score < rest - self.release_ut
                gone = gone or score < self.rest_ratio * rest
                moved = self._level > rest + self.manoeuvre_ut
                gone = gone or (score < rest / 2 and moved)
                # or, after a manoeuvre over the sensor, resting far from where the car rested
                # and no stronger (neighbours' leakage may keep its size; a stronger field is
                # another car coming in)
                far = _apart(mean, self._car) > self.on_ut
                gone = gone or (moved and far and score < rest + self.on_ut)
                # or back where the empty bay read before the car came, or going home
                gone = gone or empty or home
                # a weak car (resting under weak_ut) leaves over the sensor, fast, where a
                # neighbour's coming or going changes its field smoothly: unless the field is
                # back at the baseline, it is gone only after a fast change
                gone = gone and (
                    self._moved_ms > 0 or rest >= self.weak_ut or score < self.release_ut
                )
            if not gone:
                self._level = self._rest = score  # still there: this is its level now
                self._car = mean
                return False
            self.occupied = False
            self._moved_ms = 0  # its own departure's movement brings no weak car
            self._rejected = mean  # a new arrival must move the field away from here
            if self._level - score >= self.on_ut:
                # a clear departure: what is left is the empty bay (and the neighbours), so a
                # field that stays here must not bring the car back
                self._recent = field
            else:  # a small drop (a weak car's level dipping?): judge arrivals from the baseline
                self._recent = self.baseline
        else:
            # a car right over the sensor strengthens the vertical field (a neighbour's car, seen
            # from the side, weakens it): after a fast change, a weak car resting low
            over = self._moved_ms > 0 and 2 * (mean[2] if bz > 0 else -mean[2]) > score
            if score < (self.over_ut if over else self.on_ut):
                self._rejected = mean
                return False
            if home or (score < self.weak_ut and back < self.step_ut):
                # going home (above), or the field crept over the threshold with no vehicle's
                # manoeuvre (drift, or a neighbour's leakage in the baseline): the empty bay
                # reads this now
                self.baseline = self._recent = field
                return False
            if (
                score < self.weak_ut
                and (self._peak < self.manoeuvre_ut or self._moved_ms <= 0)
                and not over
            ):
                # a weak field that no vehicle's manoeuvre brought, no peak or no fast change (a
                # neighbour coming or going changes this bay's field smoothly; noise lifts single
                # readings of a standing field): look again, as a weak car may still be on its
                # way in, then take it for the empty bay's field
                if self._looks < EXTRA_LOOKS:
                    self._looks += 1
                    self._start_burst(self._peak)
                    return False
                self.baseline = self._recent = field
                return False
            self.occupied = True
            self._level = score
            self._settle_ms = SETTLE_MS
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
