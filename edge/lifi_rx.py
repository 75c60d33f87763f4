"""The visitor receiver's physical layer: photodiode samples in, payloads of intact frames out.

Streaming and vectorised with numpy, in three stages, each on a fixed grid of absolute sample or
chip indexes so that how the samples are chunked never changes the result:

1. Clock: every |x[n+1] - x[n]| is a bit of edge energy at time n + 1; its sum over a block of
   samples, weighted by exp(2 pi i t / T) (T = samples per chip), points at where chip edges
   fall. Summed over neighbouring blocks (weighted by signal, so occluded blocks hardly count),
   unwrapped from block to block and interpolated between block centres, it gives every chip
   boundary, following a transmitter clock off by +/-100 ppm. No threshold is involved, so
   ambient light and its mains ripple do not matter.
2. Chips: each chip's samples are integrated between its boundaries (a matched filter). Soft
   values are kept: Manchester bits are decided by comparing a chip pair and 4B6B nibbles by the
   best of the 16 balanced codewords, which both cancel any offset (ambient, ripple). Hard chips,
   needed only to find the SFD, are sliced at the midpoint of the local highest and lowest chips.
3. Frames: the preamble's end and the SFD are searched in the hard chips; the header (always
   Manchester) gives the line code, dimming level and length, hence where the payload's chips
   are between compensation chips. A payload is returned only if both CRCs pass.
"""

import functools
import math
from binascii import crc32

import numpy as np

from luciole.protocols import lifi_phy
from luciole.protocols.errors import DecodeError

_BLOCK_CHIPS = 128  # edge energy is summed per block of about this many chips
_SMOOTHING = 1  # and the clock at a block is read from it and this many blocks either side
_GROUP_CHIPS = 16  # slicing: local highest and lowest chip per group...
_GROUP_SPAN = 2  # ...over this many groups either side
_MAX_PERIOD = 4096  # samples after which the sample and chip grids line up again
_SYNC = np.unpackbits(np.frombuffer(lifi_phy.SYNC, dtype=np.uint8)).tobytes()
_HEADER_CHIPS = 16 * lifi_phy.HEADER_BYTES
_SAMPLE_LIMIT = 1e12  # garbage beyond this is clipped, so sums stay finite

# 4B6B codewords as +/-1 rows: a correlation picks the nearest, blind to any offset
_CODEWORDS = (
    np.unpackbits(np.frombuffer(lifi_phy.CODES_4B6B, dtype=np.uint8)[:, None], axis=1)[:, 2:] * 2.0
    - 1.0
)


@functools.lru_cache(maxsize=64)
def _payload_chips(payload_len, line_code, level_pct):
    """Offsets, from the end of the header, of the chips that carry payload and CRC (padding and
    compensation left out), and the offset where the frame ends."""
    num, den, _ = lifi_phy.dimming_ratio(level_pct)
    per_byte = lifi_phy.chips_per_byte(line_code)
    total = payload_len + lifi_phy.CRC_BYTES
    pieces = []
    pos = 0
    balanced = lifi_phy.HEAD_CHIP_BYTES
    owed = balanced * num // den
    for start in range(0, total, lifi_phy.BLOCK_BYTES):
        count = min(lifi_phy.BLOCK_BYTES, total - start)
        pieces.append(np.arange(pos, pos + count * per_byte))
        block_bytes = (count * per_byte + 7) // 8
        balanced += block_bytes
        due = balanced * num // den
        pos += 8 * (block_bytes + due - owed)
        owed = due
    return np.concatenate(pieces), pos


class PhyReceiver:
    def __init__(self, sample_rate_hz, chip_rate_hz):
        rates = (sample_rate_hz, chip_rate_hz)
        if any(int(r) != r or r <= 0 for r in rates):
            raise ValueError("sample_rate_hz and chip_rate_hz must be positive whole numbers")
        self.samples_per_chip = sample_rate_hz / chip_rate_hz
        if self.samples_per_chip < 3:  # at 2, the chip rate sits at Nyquist: no clock phase
            raise ValueError("need at least 3 samples per chip")
        # exp(2 pi i t / T) repeats every `period` samples: blocks are whole periods
        period = int(sample_rate_hz) // math.gcd(int(sample_rate_hz), int(chip_rate_hz))
        if period > _MAX_PERIOD:
            raise ValueError("sample_rate_hz / chip_rate_hz must be a ratio of small integers")
        blocks = max(1, round(_BLOCK_CHIPS * self.samples_per_chip / period))
        self._block = period * blocks
        times = np.arange(1, self._block + 1)  # the edge between samples n and n + 1 is at n + 1
        angles = 2 * np.pi * times / self.samples_per_chip
        self._phasor = np.stack((np.cos(angles), np.sin(angles)), axis=1)  # real matmul: faster

        self.frames_ok = 0
        self.header_errors = 0
        self.payload_errors = 0
        self.samples_seen = 0

        self._x = np.zeros(0)  # samples from absolute index _x0 on
        self._x0 = 0
        self._sums = np.zeros(0, dtype=complex)  # edge energy of blocks _sums0, _sums0 + 1...
        self._sums0 = 0
        self._next_clock = _SMOOTHING  # next block whose clock is read
        self._phase = None  # unwrapped edge phase (samples) and centre of the last block read
        self._centre = 0.0
        self._boundary = None  # start of the next chip, samples
        self._soft = np.zeros(0)  # integrated chips from absolute chip index _c0 on
        self._c0 = 0
        self._hard = b""  # sliced chips (one byte each) from _c0 on, fewer than _soft
        self._group_hi = np.zeros(0)  # per group of chips, from group _g0 on
        self._group_lo = np.zeros(0)
        self._g0 = 0
        self._search = 0  # absolute chip index where the next SFD search starts

    def feed(self, samples) -> list[bytes]:
        """Payloads of the frames completed by these samples, in order."""
        with np.errstate(invalid="ignore"):  # NaN from a broken ADC: zeroed below
            x = np.concatenate((self._x, np.ravel(samples)), dtype=np.float64)
            new = x[len(self._x) :]
            np.clip(new, -_SAMPLE_LIMIT, _SAMPLE_LIMIT, out=new)
        new[np.isnan(new)] = 0.0
        self.samples_seen += len(new)
        self._x = x
        self._edge_energy()
        soft = self._chips(self._boundaries())
        self._soft = np.concatenate((self._soft, soft))
        self._slice()
        payloads = self._frames()
        self._trim()
        return payloads

    # 1. clock

    def _edge_energy(self):
        first = self._sums0 + len(self._sums)
        last = (self._x0 + len(self._x) - 1) // self._block  # blocks need x one past their end
        if last <= first:
            return
        start = first * self._block - self._x0
        x = self._x[start : start + (last - first) * self._block + 1]
        energy = np.subtract(x[1:], x[:-1])
        np.abs(energy, out=energy)
        sums = energy.reshape(last - first, self._block) @ self._phasor
        self._sums = np.concatenate((self._sums, sums[:, 0] + 1j * sums[:, 1]))

    def _boundaries(self):
        """Chip boundaries (absolute sample times) from the blocks whose clock can now be read."""
        ready = self._sums0 + len(self._sums) - _SMOOTHING
        if ready <= self._next_clock:
            return np.zeros(0)
        window = np.ones(2 * _SMOOTHING + 1)
        lo = self._next_clock - _SMOOTHING - self._sums0
        smoothed = np.convolve(self._sums[lo : ready + _SMOOTHING - self._sums0], window, "valid")
        t = self.samples_per_chip
        raw = np.angle(smoothed) * (t / (2 * np.pi))
        blocks = np.arange(self._next_clock, ready)
        centres = blocks * self._block + self._block / 2 + 0.5
        if self._phase is None:  # the first reading only starts the clock
            self._phase, self._centre = raw[0], centres[0]
            raw, centres = raw[1:], centres[1:]
        # unwrap: the edge phase moves by less than half a chip from one block to the next
        steps = np.diff(raw, prepend=self._phase)
        phase = self._phase + np.cumsum((steps + t / 2) % t - t / 2)
        centres = np.concatenate(([self._centre], centres))
        phase = np.concatenate(([self._phase], phase))
        self._phase, self._centre = phase[-1], centres[-1]
        self._next_clock = ready
        # boundaries: where (time - phase) / T is a whole number, phase linear between centres
        u = (centres - phase) / t
        counts = np.diff(np.ceil(u)).astype(np.int64)
        k = np.repeat(np.arange(len(counts)), counts)
        n = np.arange(math.ceil(u[0]), math.ceil(u[0]) + counts.sum())
        times = centres[k] + (n - u[k]) * (np.diff(centres)[k] / np.diff(u)[k])
        if self._boundary is None:
            if not len(times):
                return times
            self._boundary = times[0]
            times = times[1:]
        return np.concatenate(([self._boundary], times))

    # 2. chips

    def _chips(self, bounds):
        """Mean light of each chip between consecutive bounds."""
        if len(bounds) < 2:
            return np.zeros(0)
        self._boundary = bounds[-1]
        index = np.floor(bounds).astype(np.int64) - self._x0
        frac = bounds - np.floor(bounds)
        whole = np.add.reduceat(self._x, index)[:-1]  # x[index_j : index_j+1]
        x = self._x[index]
        area = whole - frac[:-1] * x[:-1] + frac[1:] * x[1:]
        return area / np.diff(bounds)

    def _slice(self):
        """Hard chips for the SFD search: above or below the local (highest + lowest) / 2."""
        done = self._g0 + len(self._group_hi)
        complete = (self._c0 + len(self._soft)) // _GROUP_CHIPS
        if complete > done:
            start = done * _GROUP_CHIPS - self._c0
            groups = self._soft[start : start + (complete - done) * _GROUP_CHIPS]
            groups = groups.reshape(-1, _GROUP_CHIPS)
            self._group_hi = np.concatenate((self._group_hi, groups.max(axis=1)))
            self._group_lo = np.concatenate((self._group_lo, groups.min(axis=1)))
        first = self._c0 + len(self._hard)  # first chip not sliced yet
        g_first = first // _GROUP_CHIPS
        g_last = self._g0 + len(self._group_hi) - _GROUP_SPAN  # groups whose window is complete
        if g_last <= g_first:
            return
        span = 2 * _GROUP_SPAN + 1
        lo = g_first - _GROUP_SPAN - self._g0
        if lo < 0:  # the very first groups: no chips before them
            pad = -lo
            hi_src = np.concatenate((np.full(pad, -np.inf), self._group_hi))
            lo_src = np.concatenate((np.full(pad, np.inf), self._group_lo))
            lo = 0
        else:
            hi_src, lo_src = self._group_hi, self._group_lo
        hi_view = np.lib.stride_tricks.sliding_window_view(hi_src[lo:], span)
        lo_view = np.lib.stride_tricks.sliding_window_view(lo_src[lo:], span)
        count = g_last - g_first
        middle = (hi_view[:count].max(axis=1) + lo_view[:count].min(axis=1)) / 2
        end = g_last * _GROUP_CHIPS
        soft = self._soft[first - self._c0 : end - self._c0]
        thresholds = np.repeat(middle, _GROUP_CHIPS)[first - g_first * _GROUP_CHIPS :]
        self._hard += (soft > thresholds).astype(np.uint8).tobytes()

    # 3. frames

    def _frames(self):
        payloads = []
        sliced = self._c0 + len(self._hard)
        have = self._c0 + len(self._soft)
        while True:
            at = self._hard.find(_SYNC, self._search - self._c0)
            if at < 0:
                self._search = max(self._search, sliced - len(_SYNC) + 1)
                return payloads
            sync = self._c0 + at
            self._search = sync
            header_end = sync + len(_SYNC) + _HEADER_CHIPS
            if header_end > have:
                return payloads
            try:
                chips = self._soft[header_end - _HEADER_CHIPS - self._c0 : header_end - self._c0]
                head = _manchester(chips)
                line_code, level_pct, n = lifi_phy.parse_header(head)
            except DecodeError:
                self.header_errors += 1
                self._search = sync + 1
                continue
            offsets, frame_end = _payload_chips(n, line_code, level_pct)
            if header_end + offsets[-1] >= have:
                return payloads
            soft = self._soft[header_end - self._c0 + offsets]
            data = _manchester(soft) if line_code == lifi_phy.MANCHESTER else _4b6b(soft)
            if crc32(data[:n]) == int.from_bytes(data[n:], "big"):
                self.frames_ok += 1
                payloads.append(data[:n])
                self._search = header_end + frame_end
            else:
                self.payload_errors += 1
                self._search = sync + 1

    def _trim(self):
        # samples: keep what the next block sums and chip integrals need
        keep = (self._sums0 + len(self._sums)) * self._block
        if self._boundary is None:  # the first boundary will follow the last clock block's centre
            keep = min(keep, (self._next_clock - 1) * self._block)
        else:
            keep = min(keep, math.floor(self._boundary))
        drop = keep - self._x0
        if drop > 0:
            self._x = self._x[drop:]
            self._x0 = keep
        # block sums: keep the smoothing window of the next clock reading
        drop = self._next_clock - _SMOOTHING - self._sums0
        if drop > 0:
            self._sums = self._sums[drop:]
            self._sums0 += drop
        # chips: keep from where the SFD search resumes, in whole groups
        keep = min(self._search, self._c0 + len(self._hard))
        keep_group = keep // _GROUP_CHIPS - _GROUP_SPAN
        drop = keep_group * _GROUP_CHIPS - self._c0
        if drop > 0:
            self._soft = self._soft[drop:]
            self._hard = self._hard[drop:]
            self._c0 += drop
        drop = keep_group - _GROUP_SPAN - self._g0
        if drop > 0:
            self._group_hi = self._group_hi[drop:]
            self._group_lo = self._group_lo[drop:]
            self._g0 += drop


def _manchester(soft):
    """Bytes from Manchester chips: bit 1 sends on then off."""
    return np.packbits(soft[0::2] > soft[1::2]).tobytes()


def _4b6b(soft):
    """Bytes from 4B6B chips: each 6 chips are the codeword they correlate with best."""
    nibbles = np.argmax(soft.reshape(-1, 6) @ _CODEWORDS.T, axis=1).astype(np.uint8)
    return (nibbles[0::2] << 4 | nibbles[1::2]).tobytes()
