"""The optical channel from a Li-Fi luminaire to a visitor's photodiode, sample by sample.

Chips (packed MSB-first, 1 = LED on, as protocols.lifi_phy makes them) become float32 photodiode
samples: the LED's clock runs off by clock_offset_ppm, the LED and the photodiode low-pass the
light, the geometry scales it (Lambertian emitter and receiver), people walking through the beam
occlude it, and ambient light with its mains ripple and the receiver's noise add to it.

Units: 1.0 is the LED's full light as seen on axis at REFERENCE_DISTANCE_M; ambient_level and
noise_rms are in the same units. The channel is streaming (transmit/idle calls continue one
another: the chip clock, filters, occlusions and noise carry over) and deterministic for a seed.
"""

import math

import numpy as np

REFERENCE_DISTANCE_M = 2.5  # a museum luminaire above a visitor's head
_OCCLUSION_EDGE_S = 0.002  # a body entering or leaving the beam
_FILTER_TAIL = 1e-4  # first-order responses are cut where they fall below this


def lambertian_gain(distance_m, angle_deg, semi_angle_deg=60.0, fov_deg=70.0):
    """Received light relative to the reference position: a Lambertian LED pointing down onto a
    photodiode facing up, so the emission and incidence angles are both angle_deg."""
    if distance_m <= 0:
        raise ValueError("distance_m must be positive")
    if abs(angle_deg) >= fov_deg:
        return 0.0
    order = -math.log(2) / math.log(math.cos(math.radians(semi_angle_deg)))
    cos = math.cos(math.radians(angle_deg))
    return (REFERENCE_DISTANCE_M / distance_m) ** 2 * cos ** (order + 1)


def _first_order_taps(bandwidth_hz, sample_rate_hz):
    """Impulse response of a one-pole low-pass at the sample rate, truncated, summing to 1."""
    decay = math.exp(-2 * math.pi * bandwidth_hz / sample_rate_hz)
    length = 1 if decay < _FILTER_TAIL else int(math.log(_FILTER_TAIL) / math.log(decay)) + 1
    taps = decay ** np.arange(length)
    return taps / taps.sum()


class OpticalChannel:
    def __init__(
        self,
        chip_rate_hz=1_000_000,
        samples_per_chip=4,
        distance_m=REFERENCE_DISTANCE_M,
        angle_deg=0.0,
        led_bandwidth_hz=3e6,  # a phosphor white LED driven directly
        photodiode_bandwidth_hz=10e6,  # a PIN photodiode and its transimpedance amplifier
        noise_rms=0.05,
        ambient_level=2.0,  # gallery lighting brighter than the signal
        ripple_hz=100.0,  # mains at 50 Hz, full-wave rectified
        clock_offset_ppm=0.0,  # the luminaire's crystal against the receiver's
        occlusion_rate_hz=0.0,  # people crossing the beam, per second (Poisson)
        occlusion_mean_s=0.3,  # how long one crossing blocks the light (exponential)
        seed=0,
        ripple_depth=0.2,  # peak-to-peak ripple of the ambient light, relative to its mean
        occlusion_depth=0.02,  # light left while the beam is blocked
        semi_angle_deg=60.0,
        fov_deg=70.0,
    ):
        if samples_per_chip < 2:
            raise ValueError("samples_per_chip must be at least 2")
        self.sample_rate_hz = chip_rate_hz * samples_per_chip
        self.gain = lambertian_gain(distance_m, angle_deg, semi_angle_deg, fov_deg)
        self.noise_rms = noise_rms
        self.ambient_level = ambient_level
        self.ripple_hz = ripple_hz
        self.ripple_depth = ripple_depth
        self.occlusion_rate_hz = occlusion_rate_hz
        self.occlusion_mean_s = occlusion_mean_s
        self.occlusion_depth = occlusion_depth
        self._rng = np.random.default_rng(seed)
        # the transmitter's chip period in receiver samples
        self._chip_samples = samples_per_chip / (1 + clock_offset_ppm * 1e-6)
        self._taps = np.convolve(
            _first_order_taps(led_bandwidth_hz, self.sample_rate_hz),
            _first_order_taps(photodiode_bandwidth_hz, self.sample_rate_hz),
        )
        self._history = np.zeros(len(self._taps) - 1)  # the filters' memory of past light
        self._start = self._rng.uniform(0, 1)  # when the next chip starts, in samples
        self._next_sample = 0  # index of the next sample to emit
        self._partial = 0.0  # light already collected by that sample
        self.occlusions = []  # every (start_s, end_s) drawn so far, in time order
        self._live = 0  # occlusions before this index are over
        self._drawn_until_s = 0.0

    def transmit(self, chips) -> np.ndarray:
        """Photodiode samples while the LED sends chips (bytes, MSB-first, 1 = on)."""
        bits = np.unpackbits(np.frombuffer(bytes(chips), dtype=np.uint8))
        return self._emit(bits.astype(np.float64))

    def idle(self, n_chips) -> np.ndarray:
        """Photodiode samples while the LED is dark for n_chips chip periods."""
        return self._emit(np.zeros(int(n_chips)))

    def _emit(self, levels):
        # A sample integrates the light over [n, n + 1) (in sample units). Invariant between
        # calls: next_sample <= start < next_sample + 1, and partial is the light that sample
        # has already collected in [next_sample, start).
        period = self._chip_samples
        end = self._start + len(levels) * period
        bounds = np.arange(self._next_sample + 1, math.floor(end) + 1, dtype=np.float64)
        cum = np.concatenate(([0.0], np.cumsum(levels))) * period
        if len(bounds):
            offset = bounds - self._start
            chip = np.minimum((offset / period).astype(np.int64), len(levels) - 1)
            light = cum[chip] + levels[chip] * (offset - chip * period)  # since start
            samples = np.diff(light, prepend=-self._partial)
            self._partial = cum[-1] - light[-1]
        else:
            samples = np.zeros(0)
            self._partial += cum[-1]
        self._start = end
        self._next_sample += len(bounds)
        return self._receive(samples)

    def _receive(self, light):
        n = len(light)
        first = self._next_sample - n
        filtered = np.convolve(np.concatenate((self._history, light)), self._taps, "valid")
        if len(self._history):
            self._history = np.concatenate((self._history, light))[-len(self._history) :]
        t_s = (first + np.arange(n)) / self.sample_rate_hz
        signal = filtered * (self.gain * self._occlusion_gain(t_s))
        ripple = np.abs(np.sin(math.pi * self.ripple_hz * t_s)) - 2 / math.pi
        ambient = self.ambient_level * (1 + self.ripple_depth * ripple)
        noise = self._rng.standard_normal(n) * self.noise_rms
        return (signal + ambient + noise).astype(np.float32)

    def _occlusion_gain(self, t_s):
        gain = np.ones(len(t_s))
        if not len(t_s) or self.occlusion_rate_hz <= 0:
            return gain
        while self._drawn_until_s <= t_s[-1]:
            start = self._drawn_until_s + self._rng.exponential(1 / self.occlusion_rate_hz)
            end = start + self._rng.exponential(self.occlusion_mean_s)
            self.occlusions.append((start, end))
            self._drawn_until_s = end
        while self.occlusions[self._live][1] + _OCCLUSION_EDGE_S < t_s[0]:
            self._live += 1
        for start, end in self.occlusions[self._live :]:
            if start - _OCCLUSION_EDGE_S > t_s[-1]:
                break
            # depth of the dip: 0 outside, ramping to 1 over the edges
            inside = np.minimum(t_s - start + _OCCLUSION_EDGE_S, end + _OCCLUSION_EDGE_S - t_s)
            dip = np.clip(inside / _OCCLUSION_EDGE_S, 0, 1)
            gain = np.minimum(gain, 1 - (1 - self.occlusion_depth) * dip)
        return gain
