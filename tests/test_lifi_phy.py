"""Li-Fi physical layer end to end: frames from protocols.lifi_phy, through the simulated optical
channel, decoded from photodiode samples by edge.lifi_rx. The byte-level codec itself is checked
by the shared vectors (tests/vectors/lifi-phy.json) under both interpreters."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from luciole.edge.lifi_rx import PhyReceiver
from luciole.protocols import lifi_phy
from luciole.protocols.lifi_phy_encode import encode_slices
from luciole.simulators.optical import OpticalChannel

CHIP_RATE_HZ = 1_000_000
LINE_CODES = {"manchester": lifi_phy.MANCHESTER, "4b6b": lifi_phy.CODE_4B6B}


def payloads(count, seed=1):
    rng = np.random.default_rng(seed)
    sizes = [lifi_phy.MAX_PAYLOAD, 0, 1, 333, *rng.integers(0, lifi_phy.MAX_PAYLOAD, count)]
    return [rng.bytes(int(n)) for n in sizes[:count]]


def on_air(channel, frames, line_code, level_pct=50, dark_chips=300):
    """Samples of a carousel: dark, the frames back to back, dark; and each frame's span (s)."""
    pieces = [channel.idle(dark_chips)]
    spans = []
    for payload in frames:
        start = sum(len(p) for p in pieces)
        pieces.append(channel.transmit(lifi_phy.encode_frame(payload, line_code, level_pct)))
        end = start + len(pieces[-1])
        spans.append((start / channel.sample_rate_hz, end / channel.sample_rate_hz))
    pieces.append(channel.idle(dark_chips))
    return np.concatenate(pieces), spans


def receive(samples, chunk=65_536, sample_rate_hz=4 * CHIP_RATE_HZ):
    receiver = PhyReceiver(sample_rate_hz, CHIP_RATE_HZ)
    out = []
    for i in range(0, len(samples), chunk):
        out += receiver.feed(samples[i : i + chunk])
    return receiver, out


IMPAIRMENTS = {
    "noise-ripple-fast-clock": dict(noise_rms=0.15, ripple_depth=0.5, clock_offset_ppm=100),
    "slow-clock-far-off-axis": dict(distance_m=3.5, angle_deg=30, clock_offset_ppm=-100),
    "bright-ambient-slow-led": dict(ambient_level=20, led_bandwidth_hz=1e6, clock_offset_ppm=60),
    "three-samples-per-chip": dict(samples_per_chip=3, noise_rms=0.1, clock_offset_ppm=-100),
}


@pytest.mark.parametrize("code", LINE_CODES)
@pytest.mark.parametrize("impairment", IMPAIRMENTS)
def test_every_frame_arrives_intact_through_the_impairments(code, impairment):
    channel = OpticalChannel(
        CHIP_RATE_HZ, seed=7, **{"samples_per_chip": 4, **IMPAIRMENTS[impairment]}
    )
    sent = payloads(10)
    samples, _ = on_air(channel, sent, LINE_CODES[code])
    receiver, got = receive(samples, sample_rate_hz=int(channel.sample_rate_hz))
    assert got == sent
    assert (receiver.frames_ok, receiver.header_errors, receiver.payload_errors) == (10, 0, 0)
    assert receiver.samples_seen == len(samples)


@pytest.mark.parametrize("code", LINE_CODES)
@pytest.mark.parametrize("level_pct", [10, 35, 80, 90])
def test_dimmed_frames_arrive_and_compensation_chips_are_ignored(code, level_pct):
    channel = OpticalChannel(CHIP_RATE_HZ, 4, noise_rms=0.1, clock_offset_ppm=-80, seed=3)
    sent = payloads(6)
    samples, _ = on_air(channel, sent, LINE_CODES[code], level_pct)
    receiver, got = receive(samples)
    assert got == sent
    assert receiver.header_errors == receiver.payload_errors == 0


@pytest.mark.parametrize("code", LINE_CODES)
def test_people_walking_through_the_beam_cost_only_the_frames_they_block(code):
    channel = OpticalChannel(occlusion_rate_hz=4, occlusion_mean_s=0.05, seed=11)
    sent = payloads(120, seed=2)  # about 1.5 s of light
    samples, spans = on_air(channel, sent, LINE_CODES[code])
    _, got = receive(samples)
    edge_s = 0.002  # an occlusion ramps in and out over this
    blocked = [
        any(start - edge_s < end_f and end + edge_s > start_f for start, end in channel.occlusions)
        for start_f, end_f in spans
    ]
    assert 5 < sum(blocked) < len(sent) - 20  # the scenario does occlude, and not everything
    clear = [p for p, b in zip(sent, blocked, strict=True) if not b]
    assert [p for p in got if p in clear] == clear  # every clear frame, right after each occlusion
    assert all(p in sent for p in got)


def test_chunked_feeding_gives_what_whole_feeding_gives():
    channel = OpticalChannel(noise_rms=0.2, clock_offset_ppm=90, occlusion_rate_hz=3, seed=5)
    samples, _ = on_air(channel, payloads(30, seed=4), lifi_phy.CODE_4B6B, 70)
    whole, whole_out = receive(samples, chunk=len(samples))
    rng = np.random.default_rng(0)
    cuts = np.sort(rng.choice(len(samples), 400, replace=False))
    cuts = np.concatenate((cuts, np.arange(1000, 1100)))  # and runs of one-sample chunks
    chunked = PhyReceiver(4 * CHIP_RATE_HZ, CHIP_RATE_HZ)
    chunked_out = []
    for chunk in np.split(samples, np.unique(cuts)):
        chunked_out += chunked.feed(chunk)
    assert whole_out and chunked_out == whole_out
    counters = ("frames_ok", "header_errors", "payload_errors", "samples_seen")
    assert [getattr(chunked, c) for c in counters] == [getattr(whole, c) for c in counters]


def clean_channel():
    return OpticalChannel(noise_rms=0.02, clock_offset_ppm=50, seed=9)


def through_clean_channel(chips):
    channel = clean_channel()
    return np.concatenate((channel.idle(600), channel.transmit(chips), channel.idle(600)))


def test_corrupted_chips_never_yield_a_payload():
    payload = payloads(1, seed=6)[0][:200]
    rng = np.random.default_rng(8)
    for code in LINE_CODES.values():
        frame = lifi_phy.encode_frame(payload, code)
        assert receive(through_clean_channel(frame))[1] == [payload]
        for _ in range(25):
            damaged = bytearray(frame)
            for at in rng.integers(0, len(frame) * 8, 3):
                damaged[at // 8] ^= 0x80 >> (at % 8)
            _, got = receive(through_clean_channel(bytes(damaged)))
            # a flipped chip may be padding, or a Manchester half-bit that soft decisions
            # recover: the payload may arrive, but only ever as it was sent
            assert got in ([], [payload])


def test_a_payload_whose_crc_fails_is_counted_not_returned():
    payload = b"exhibit 12: the astrolabe"
    frame = bytearray(lifi_phy.encode_frame(payload, lifi_phy.MANCHESTER))
    # swap the two chips of one payload bit: valid Manchester, wrong bit, wrong CRC
    at = lifi_phy.HEAD_CHIP_BYTES + 3
    frame[at] ^= 0xC0
    receiver, got = receive(through_clean_channel(bytes(frame)))
    assert got == []
    assert (receiver.frames_ok, receiver.payload_errors) == (0, 1)


def light_of(frames, level_pct, code):
    chips = b"".join(lifi_phy.encode_frame(p, code, level_pct) for p in frames)
    return np.unpackbits(np.frombuffer(chips, dtype=np.uint8)).astype(float)


def flicker_points(light, below_hz=200):
    """The strongest modulation of the light at 200 Hz or slower, in points of % of full light
    (IEEE 1789 finds no effect below 0.0333 x f points, 2 points at 60 Hz): the amplitude of its
    largest spectral component there, Hann-windowed."""
    window = np.hanning(len(light))
    spectrum = np.abs(np.fft.rfft((light - light.mean()) * window)) * 2 / window.sum()
    hz = np.fft.rfftfreq(len(light), 1 / CHIP_RATE_HZ)
    return 100 * spectrum[(hz > 0) & (hz <= below_hz)].max()


@pytest.mark.parametrize("code", LINE_CODES)
@pytest.mark.parametrize("level_pct", [10, 20, 35, 50, 65, 80, 90])
def test_dimming_gives_the_commanded_level_without_flicker(code, level_pct):
    light = light_of(payloads(12, seed=level_pct), level_pct, LINE_CODES[code])
    assert abs(100 * light.mean() - level_pct) < 0.1
    assert flicker_points(light) < 0.5


def test_the_flicker_check_catches_compensation_only_between_frames():
    # the naive way: frames at 50%, then the compensation of the whole frame in one run
    frame = lifi_phy.encode_frame(payloads(1)[0], lifi_phy.MANCHESTER)
    run = bytes([0xFF]) * (lifi_phy.compensation_chips(80, len(frame) * 8) // 8)
    light = np.unpackbits(np.frombuffer((frame + run) * 10, dtype=np.uint8)).astype(float)
    assert abs(100 * light.mean() - 80) < 0.1
    assert flicker_points(light) > 10  # 30 points at the frame rate


@given(
    payload=st.binary(max_size=lifi_phy.MAX_PAYLOAD),
    code=st.sampled_from(list(LINE_CODES.values())),
    level_pct=st.integers(lifi_phy.LEVEL_MIN, lifi_phy.LEVEL_MAX),
    out_bytes=st.integers(128, 4096),
)
def test_a_frame_sent_in_slices_is_the_whole_frame(payload, code, level_pct, out_bytes):
    # the shared vectors check every level under both interpreters; this, any payload and size
    out = bytearray(out_bytes)
    slices = [bytes(out[:used]) for used in encode_slices(out, payload, code, level_pct)]
    assert b"".join(slices) == lifi_phy.encode_frame(payload, code, level_pct)
    assert all(len(s) % 4 == 0 for s in slices[:-1])  # whole 32-bit words but the last


def test_dimming_costs_airtime_away_from_half_level():
    airtime = {
        level: lifi_phy.frame_chips(lifi_phy.MAX_PAYLOAD, lifi_phy.CODE_4B6B, level)
        for level in (10, 30, 50, 70, 90)
    }
    assert airtime[50] < airtime[30] == airtime[70] < airtime[10] == airtime[90]
    # at 90%, every balanced chip brings 4 compensation chips along
    assert airtime[90] == pytest.approx(5 * airtime[50], rel=0.01)


# garbage disturbs the clock and slicer for a few hundred chips around it, as a flash would
FRAME_AFTER_DARK = on_air(clean_channel(), [b"still here"], lifi_phy.CODE_4B6B, dark_chips=600)[0]


@given(garbage=st.binary(max_size=8000), chunk=st.integers(500, 8000))
def test_garbage_samples_never_raise_nor_yield_and_the_next_frame_still_arrives(garbage, chunk):
    noise = np.frombuffer(garbage[: len(garbage) // 4 * 4], dtype=np.float32)  # NaN, inf, any
    receiver = PhyReceiver(4 * CHIP_RATE_HZ, CHIP_RATE_HZ)
    assert receiver.feed(noise) == []
    got = []
    for i in range(0, len(FRAME_AFTER_DARK), chunk):
        got += receiver.feed(FRAME_AFTER_DARK[i : i + chunk])
    assert got == [b"still here"]
    assert receiver.samples_seen == len(noise) + len(FRAME_AFTER_DARK)


def test_receiver_refuses_rates_it_cannot_recover_a_clock_from():
    with pytest.raises(ValueError, match="3 samples per chip"):
        PhyReceiver(2 * CHIP_RATE_HZ, CHIP_RATE_HZ)
    with pytest.raises(ValueError, match="whole numbers"):
        PhyReceiver(4e6 + 0.5, CHIP_RATE_HZ)
