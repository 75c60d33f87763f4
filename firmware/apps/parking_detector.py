# Bay occupancy from an in-ground magnetometer: pure logic, the same file on the board
# (MicroPython) and in the simulators and benches (CPython). No I/O, no clock: the caller feeds
# samples with the time since the previous one and asks when to sample next.
#
# Deviation d = sample - baseline (the empty bay's field, per axis). Its car score (uT) is
#   score = max(|d| + w v, f |d|)      (w = vertical_weight, f = size_floor)
#   v = component of d along Earth's vertical (positive: the field pulled further the way
#       Earth's field points down, as steel right above the sensor does)
# A car over the sensor pulls the field along Earth's vertical (induced magnetisation); a car in
# the next bay is seen from the side, where a dipole's field reverses its vertical part, so its
# leakage scores near zero however big it is, up to the 0.35 |d| floor that keeps any large
# field (a car with a strong permanent magnetisation) a car. States and duty cycle:
#   vacant   --sample score >= trigger--> burst of fast samples --mean >= on--> occupied
#   occupied --sample score < on--------> burst of fast samples --mean < off--> vacant
# on > off is the hysteresis; judging a burst's mean (noise / 2 with 4 samples) means a noisy
# sample costs a short burst, never a transition. The baseline follows slow drift (temperature,
# ageing) only while vacant, settled and close to it, so it never learns a car.
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
        track_ut=2.0,
        track_tau_s=3600.0,
        noise_limit_ut=1.5,
        earth_h_ut=21.1,
        earth_z_ut=-42.9,
        earth_tolerance_ut=12.0,
        release_ut=1.0,
        rest_ratio=0.25,
        vertical_weight=0.0,
        size_floor=0.0,
    ):
        self.on_ut = on_ut
        self.off_ut = off_ut
        self.release_ut = release_ut
        self.rest_ratio = rest_ratio
        self.trigger_ut = trigger_ut
        self.track_ut = track_ut
        self.track_tau_s = track_tau_s
        self.noise_limit_ut = noise_limit_ut
        self.earth = (earth_h_ut, earth_z_ut)
        self.earth_tolerance_ut = earth_tolerance_ut
        self.vertical_weight = vertical_weight
        self.size_floor = size_floor
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
        if self._burst:
            return self._confirm(dx, dy, dz)
        score = self._score(dx, dy, dz)
        if self.occupied:
            if score < self.on_ut or score < self._level - self.release_ut:
                self._start_burst()
            else:  # the parked car's own level, once it has settled
                self._level = self._rest = (self._level + score) / 2
            return False
        if score >= self.trigger_ut:
            rejected = self._rejected
            # the same standing field that a burst already turned down: not worth another
            if rejected is None or _dist(dx, dy, dz, rejected) > self.trigger_ut / 2:
                self._start_burst()
            return False
        self._rejected = None
        if dx * dx + dy * dy + dz * dz < self.track_ut * self.track_ut:
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
        return self._score(x - bx, y - by, z - bz)

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
        # sign of Earth's vertical in this sensor's axes (negative z up in the north)
        self._down = 1.0 if baseline is None or baseline[2] >= 0 else -1.0
        self.occupied = False
        self._level = self._rest = 0.0
        self._rejected = None
        self._burst = 0
        self._sum = [0.0, 0.0, 0.0]

    def _score(self, dx, dy, dz):
        size = math.sqrt(dx * dx + dy * dy + dz * dz)
        shaped = size + self.vertical_weight * self._down * dz
        floor = self.size_floor * size
        return shaped if shaped > floor else floor

    def _start_burst(self):
        self._burst = CONFIRM_SAMPLES
        self._sum = [0.0, 0.0, 0.0]

    def _confirm(self, dx, dy, dz):
        s = self._sum
        s[0] += dx
        s[1] += dy
        s[2] += dz
        self._burst -= 1
        if self._burst:
            return False
        mean = (s[0] / CONFIRM_SAMPLES, s[1] / CONFIRM_SAMPLES, s[2] / CONFIRM_SAMPLES)
        score = self._score(mean[0], mean[1], mean[2])
        if self.occupied:
            # gone: below the off threshold and clearly below what the parked car showed, or
            # most of its settled field gone (neighbours' leakage may hold the rest up)
            gone = score < self.off_ut and score < self._level - self.release_ut
            if not gone and score >= self.rest_ratio * self._rest:
                self._level = self._rest = score  # still there: this is its level now
                return False
            self.occupied = False
            self._rejected = mean  # a new arrival must move the field away from here
        else:
            if score < self.on_ut:
                self._rejected = mean
                return False
            self.occupied = True
            self._level = score
            self._rest = 0.0  # unknown while the car is still manoeuvring
            self._rejected = None
        self.changes += 1
        return True


def _dist(dx, dy, dz, point):
    px, py, pz = point
    return math.sqrt((dx - px) ** 2 + (dy - py) ** 2 + (dz - pz) ** 2)
