# The parking sensor's `calibrate` command: the mean of the detector's recent samples becomes the
# empty bay's baseline, saved in the config. A cold command (firmware/runtime.py): this code is on
# the board's heap only while it runs.
import math
import struct

from .parking_detector import IDLE_MS, SAMPLE, SAMPLE_BYTES, WINDOW

try:
    from micropython import const
except ImportError:

    def const(x):
        return x


# refused: a noisy window, or a mean too far from Earth's field here
_NOISE_LIMIT_UT = const(1.5)
_EARTH_H_UT = const(21.1)
_EARTH_Z_UT = const(-42.9)
_EARTH_TOLERANCE_UT = const(12.0)


def calibrate(sensor, args):
    # a refusal is a ValueError saying why: the console replies with it
    baseline = calibrate_detector(sensor.detector, bool(args.get("force", False)))
    sensor.device.config.update({"parking_baseline_ut": list(baseline)})
    sensor.report_now = True  # the bay's state goes out at once
    rounded = [round(baseline[0], 2), round(baseline[1], 2), round(baseline[2], 2)]
    sensor.device.log("info", "calibrated: baseline %s uT" % (rounded,))
    return {"baseline_ut": rounded}


def calibrate_detector(detector, force=False):
    """Makes the mean of the detector's recent samples the empty bay's baseline; returns it.
    Raises ValueError, saying why, when the bay does not look empty or the signal is noisy.
    force skips only the "vehicle detected" check, for a technician standing at an empty bay
    that the sensor wrongly believes occupied."""
    samples = detector.samples
    if samples < WINDOW:
        raise ValueError(
            "not enough readings yet (%d of %d): wait %d s and try again"
            % (samples, WINDOW, (WINDOW - samples) * IDLE_MS // 1000 + 1)
        )
    # per axis, the mean then the spread of the window's samples, read in place (a list of
    # them would take a board 1.3 KB), oldest first: the same sums on every interpreter
    window = detector.window
    mean = [0.0, 0.0, 0.0]
    worst, axis = 0.0, 0
    for k in range(3):
        for j in range(WINDOW):
            mean[k] += _sample(window, samples + j, k) / WINDOW
        squares = 0.0
        for j in range(WINDOW):
            squares += (_sample(window, samples + j, k) - mean[k]) ** 2
        spread = math.sqrt(squares / (WINDOW - 1))
        if spread > worst:
            worst, axis = spread, k
    if worst > _NOISE_LIMIT_UT:
        raise ValueError(
            "signal too noisy: %.1f uT on %s, limit %.1f uT (a vehicle moving nearby or "
            "electrical interference): wait for a quiet street and try again"
            % (worst, "xyz"[axis], _NOISE_LIMIT_UT)
        )
    if detector.occupied and not force:
        raise ValueError(
            "a vehicle is detected over the sensor: calibrate with the bay empty (if it is "
            "empty, calibrate with force)"
        )
    h = math.sqrt(mean[0] ** 2 + mean[1] ** 2)
    off = math.sqrt((h - _EARTH_H_UT) ** 2 + (mean[2] - _EARTH_Z_UT) ** 2)
    if off > _EARTH_TOLERANCE_UT:
        raise ValueError(
            "the field (horizontal %.1f uT, vertical %.1f uT) is %.0f uT away from Earth's "
            "field here (%.1f, %.1f): a vehicle or steel over the sensor? Clear the bay and "
            "try again" % (h, mean[2], off, _EARTH_H_UT, _EARTH_Z_UT)
        )
    detector.set_baseline((mean[0], mean[1], mean[2]))
    return detector.baseline


def _sample(window, n, axis):
    # one axis of the window's nth sample (n counted mod WINDOW, as the detector writes them)
    return struct.unpack_from(SAMPLE, window, n % WINDOW * SAMPLE_BYTES)[axis]
