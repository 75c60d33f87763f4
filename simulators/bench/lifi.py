"""`luciole bench lifi`: Li-Fi goodput per line code, and time to 100 KiB of exhibit content.

Goodput comes from the PHY bench (simulators/bench/lifi_phy.py). Time to content runs the real
carousel frames through the real receiver (MAC decoding, RaptorQ, SHA-256) at frame level: a
visitor joins at a uniformly random instant, frames are erased at random with probability p (the
PHY is benched on its own), and the clock stops when every object has been presented. Each figure
is set against the erasure bound K * tau / (1 - p) (K source symbols of the content, tau the airtime
of one full symbol frame) and against a plain carousel (source symbols only, repeated) measured in
the same run.
"""

import bisect
import random

import numpy as np

from luciole.edge import lifi_carousel, lifi_content
from luciole.protocols import lifi_mac, lifi_phy
from luciole.simulators.bench import print_table
from luciole.simulators.bench.lifi_phy import measure_goodput

CHIP_RATE_HZ = 1_000_000
LOSSES = (0.0, 0.05, 0.20)
TRIALS = {0.0: 1000, 0.05: 3000, 0.20: 10_000}  # 14,000 in all: enough to tell 99.99%
PLAIN_TRIALS = 300
TRIALS_4B6B = 2000  # at p = 20%, for the P99 with the faster line code
# (id, type, priority, bytes): 100 KiB, a title and summary first
CONTENT = (
    ("summary", "text/markdown", 0, 800),
    ("photo", "image/webp", 1, 30_000),
    ("audio-fr", "audio/ogg", 1, 71_600),
)
PLAIN_MAX_LOOPS = 40
SEED = 20240611


class _Air:
    """A carousel on the air: when each frame of the loop starts and ends."""

    def __init__(self, frames, line_code):
        airtime_s = [lifi_phy.frame_chips(len(f), line_code) / CHIP_RATE_HZ for f in frames]
        self.frames = frames
        self.ends_s = list(np.cumsum(airtime_s))
        self.starts_s = [end - t for end, t in zip(self.ends_s, airtime_s, strict=True)]
        self.loop_s = self.ends_s[-1]


def _trial(air, items, loss, rng, max_loops):
    """(seconds to every object, seconds to the first glimpse), None for content not complete
    within max_loops; AssertionError if an object presented differs from what was sent."""
    join_s = rng.random() * air.loop_s
    index = bisect.bisect_left(air.starts_s, join_s)
    assembler = lifi_content.ContentAssembler()
    glimpse_s = None
    n = len(air.frames)
    for step in range(max_loops * n):
        loop, at = divmod(index + step, n)
        if rng.random() < loss:
            continue
        for event in assembler.feed(air.frames[at]):
            if isinstance(event, lifi_content.ObjectComplete):
                assert event.data == items[event.entry.id], event.entry.id
                if event.entry.priority == 0 and glimpse_s is None:
                    glimpse_s = loop * air.loop_s + air.ends_s[at] - join_s
        if assembler.complete():
            return loop * air.loop_s + air.ends_s[at] - join_s, glimpse_s
    return None, glimpse_s


def _runs(air, items, loss, trials, rng, max_loops):
    done, glimpses, failures = [], [], 0
    for _ in range(trials):
        total_s, glimpse_s = _trial(air, items, loss, rng, max_loops)
        if total_s is None:
            failures += 1
        else:
            done.append(total_s)
        if glimpse_s is not None:
            glimpses.append(glimpse_s)
    return np.array(done), np.array(glimpses), failures


def run(scale=1.0):
    rng = random.Random(SEED)
    items = {name: rng.randbytes(size) for name, _, _, size in CONTENT}
    content = [lifi_carousel.Item(n, kind, prio, items[n]) for n, kind, prio, _ in CONTENT]
    ours = lifi_carousel.build("bench", 1, content, lifi_phy.MAX_PAYLOAD)
    plain = lifi_carousel.build("bench", 1, content, lifi_phy.MAX_PAYLOAD, plain=True)
    symbol_size = lifi_carousel.symbol_size(lifi_phy.MAX_PAYLOAD)
    k = -(-sum(len(v) for v in items.values()) // symbol_size)
    full_frame = symbol_size + lifi_mac.SYMBOL_OVERHEAD

    goodput = {
        code: measure_goodput(code, chip_rate_hz=CHIP_RATE_HZ)["goodput_kbps"]
        for code in (lifi_phy.MANCHESTER, lifi_phy.CODE_4B6B)
    }

    result = {
        "goodput_kbps_manchester": round(goodput[lifi_phy.MANCHESTER], 1),
        "goodput_kbps_4b6b": round(goodput[lifi_phy.CODE_4B6B], 1),
    }
    rows = []
    successes = attempts = 0
    all_glimpses = []
    for code, name in ((lifi_phy.MANCHESTER, "manchester"), (lifi_phy.CODE_4B6B, "4b6b")):
        tau_s = lifi_phy.frame_chips(full_frame, code) / CHIP_RATE_HZ
        air, plain_air = _Air(ours.frames, code), _Air(plain.frames, code)
        losses = LOSSES if code == lifi_phy.MANCHESTER else (0.20,)
        for loss in losses:
            bound_s = k * tau_s / (1 - loss)
            trials = TRIALS[loss] if code == lifi_phy.MANCHESTER else TRIALS_4B6B
            trials = max(20, int(trials * scale))
            done, glimpses, failures = _runs(air, items, loss, trials, rng, max_loops=1)
            successes += len(done)
            attempts += trials
            all_glimpses.append(glimpses)
            plain_trials = max(10, int(PLAIN_TRIALS * scale))
            plain_done, _, _ = _runs(plain_air, items, loss, plain_trials, rng, PLAIN_MAX_LOOPS)
            tag = f"p{round(loss * 100)}" + ("" if code == lifi_phy.MANCHESTER else "_4b6b")
            ratio = float(done.mean() / bound_s)
            plain_ratio = float(plain_done.mean() / bound_s)
            result[f"ttc_ratio_mean_{tag}"] = round(ratio, 4)
            result[f"ttc_mean_s_{tag}"] = round(float(done.mean()), 3)
            result[f"ttc_p99_s_{tag}"] = round(float(np.percentile(done, 99)), 3)
            result[f"plain_ratio_mean_{tag}"] = round(plain_ratio, 2)
            rows.append(
                [
                    name,
                    f"{loss:.0%}",
                    trials,
                    f"{bound_s:.3f}",
                    f"{done.mean():.3f}",
                    f"{np.percentile(done, 99):.3f}",
                    f"{ratio:.3f}",
                    f"{plain_ratio:.2f}",
                    f"{np.mean(glimpses):.3f}",
                    f"{np.percentile(glimpses, 99):.3f}",
                    failures,
                ]
            )
    glimpses = np.concatenate(all_glimpses)
    result["first_glimpse_s"] = round(float(np.mean(glimpses)), 3)
    result["first_glimpse_p99_s"] = round(float(np.percentile(glimpses, 99)), 3)
    result["decode_success"] = round(successes / attempts, 6)
    result["trials"] = attempts
    result["k_symbols"] = k
    result["carousel_frames"] = len(ours.frames)
    result["loop_s_manchester"] = round(_Air(ours.frames, lifi_phy.MANCHESTER).loop_s, 3)
    if scale != 1.0:
        print(f"SCALED RUN (scale={scale})")
        result["scale"] = scale
    print(
        f"goodput at {CHIP_RATE_HZ / 1e6:g} Mchip/s: Manchester {result['goodput_kbps_manchester']}"
        f" kb/s, 4B6B {result['goodput_kbps_4b6b']} kb/s"
    )
    print(
        f"time to {sum(len(v) for v in items.values()) // 1024} KiB (K={k} symbols of "
        f"{symbol_size} B, carousel of {len(ours.frames)} frames); a visitor succeeds when "
        "everything is decoded before the loop comes back to where they joined"
    )
    print_table(
        [
            "line code",
            "loss",
            "trials",
            "bound s",
            "mean s",
            "p99 s",
            "mean/bound",
            "plain/bound",
            "glimpse s",
            "glimpse p99",
            "failed",
        ],
        rows,
    )
    return result
