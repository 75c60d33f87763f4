"""Li-Fi physical layer figures: goodput per line code through the simulated optical channel, the
receiver's real-time factor, and what encoding a frame costs under MicroPython.

Goodput counts payload bits that arrive intact over the airtime of everything sent for them
(preamble, SFD, header, CRCs, compensation; frames go back to back, as in the carousel), the
frames actually encoded by protocols.lifi_phy, passed through the default OpticalChannel and
decoded by edge.lifi_rx.PhyReceiver. `luciole bench lifi` reports them with the content figures.
"""

import json
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np

from luciole.edge.lifi_rx import PhyReceiver
from luciole.protocols import lifi_phy
from luciole.simulators import micropython
from luciole.simulators.bench import print_table
from luciole.simulators.optical import OpticalChannel

SAMPLES_PER_CHIP = 4
LINE_CODES = {"manchester": lifi_phy.MANCHESTER, "4b6b": lifi_phy.CODE_4B6B}
GOALS_KBPS = {"manchester": 440, "4b6b": 590}  # DESIGN.md section 7
_CHUNK = 65_536  # samples per feed(), about what a USB ADC delivers at a time
_FLUSH_CHIPS = 1_000  # dark after the last frame, so the receiver sees its end


def measure_goodput(line_code, chip_rate_hz=1_000_000, seconds=1.0, level_pct=50, **channel):
    """Sends MAX_PAYLOAD frames of random bytes for about `seconds` of airtime through an
    OpticalChannel (its defaults, or the keyword arguments given) and decodes them."""
    code = LINE_CODES.get(line_code, line_code)
    rng = np.random.default_rng(1)
    link = OpticalChannel(chip_rate_hz, SAMPLES_PER_CHIP, **channel)
    frame_chips = lifi_phy.frame_chips(lifi_phy.MAX_PAYLOAD, code, level_pct)
    count = max(1, round(seconds * chip_rate_hz / frame_chips))
    sent = [rng.bytes(lifi_phy.MAX_PAYLOAD) for _ in range(count)]
    light = [link.idle(_FLUSH_CHIPS)]
    light += [link.transmit(lifi_phy.encode_frame(p, code, level_pct)) for p in sent]
    light.append(link.idle(_FLUSH_CHIPS))
    samples = np.concatenate(light)

    receiver = PhyReceiver(chip_rate_hz * SAMPLES_PER_CHIP, chip_rate_hz)
    got = []
    start = time.perf_counter()
    for i in range(0, len(samples), _CHUNK):
        got += receiver.feed(samples[i : i + _CHUNK])
    busy_s = time.perf_counter() - start

    airtime_s = count * frame_chips / chip_rate_hz
    unclaimed = Counter(sent)  # each payload counts once, as sent
    intact = 0
    for payload in got:
        if unclaimed[payload]:
            unclaimed[payload] -= 1
            intact += len(payload)
    return {
        "goodput_kbps": round(8 * intact / airtime_s / 1000, 1),
        "frames_sent": count,
        "frames_ok": receiver.frames_ok,
        "header_errors": receiver.header_errors,
        "payload_errors": receiver.payload_errors,
        "airtime_s": round(airtime_s, 4),
        "efficiency": round(8 * lifi_phy.MAX_PAYLOAD / frame_chips, 4),  # payload bits per chip
        "realtime_factor": round(
            len(samples) / receiver.samples_per_chip / chip_rate_hz / busy_s, 1
        ),
    }


# Runs under the MicroPython unix port, -X heapsize=64k, as the luminaire controller would:
# encode_into() a reused buffer, one MAX_PAYLOAD frame per call.
_ENCODE_SCRIPT = """
import json, time
from protocols import lifi_phy
payload = bytes((i * 7 + 1) & 255 for i in range(lifi_phy.MAX_PAYLOAD))
result = {}
for name, code in (("manchester", lifi_phy.MANCHESTER), ("4b6b", lifi_phy.CODE_4B6B)):
    for level in (50, 80):
        out = bytearray(lifi_phy.frame_chips(len(payload), code, level) // 8)
        lifi_phy.encode_into(out, payload, code, level)
        best = None
        for _ in range(5):
            start = time.ticks_us()
            for _ in range(10):
                lifi_phy.encode_into(out, payload, code, level)
            us = time.ticks_diff(time.ticks_us(), start) / 10
            best = us if best is None or us < best else best
        result[name + "@" + str(level)] = best
print(json.dumps(result))
"""


def encode_time_micropython():
    """Microseconds to encode one MAX_PAYLOAD frame under MicroPython, per line code@level."""
    with tempfile.TemporaryDirectory(prefix="luciole-lifi-") as folder:
        script = Path(folder) / "encode_time.py"
        script.write_text(_ENCODE_SCRIPT)
        return json.loads(micropython.run(script).strip().splitlines()[-1])


def run(seconds=1.0, chip_rate_hz=1_000_000):
    """Prints the tables; returns the figures for the bench's JSON line."""
    goodput = {
        name: measure_goodput(code, chip_rate_hz, seconds) for name, code in LINE_CODES.items()
    }
    rows = [
        [
            name,
            f"{r['goodput_kbps']:.1f}",
            GOALS_KBPS[name],
            f"{r['efficiency'] * chip_rate_hz / 1000:.1f}",
            f"{r['frames_ok']}/{r['frames_sent']}",
            f"{r['realtime_factor']:.1f}x",
        ]
        for name, r in goodput.items()
    ]
    rate = f"{chip_rate_hz / 1e6:g} Mchip/s, {SAMPLES_PER_CHIP} samples/chip"
    print(f"Li-Fi PHY at {rate}, through the default optical channel")
    print_table(["line code", "goodput kb/s", "goal", "frame bound", "frames ok", "rx speed"], rows)
    print("anchors: OpenVLC 1.3 400 kb/s; IEEE 802.15.7 PHY I at most 266.6 kb/s\n")

    encode_us = encode_time_micropython()
    rows = []
    for key, us in sorted(encode_us.items()):
        name, level = key.split("@")
        chips = lifi_phy.frame_chips(lifi_phy.MAX_PAYLOAD, LINE_CODES[name], int(level))
        airtime_us = chips / chip_rate_hz * 1e6
        rows.append(
            [f"{name} at {level}%", f"{us:.0f}", f"{airtime_us:.0f}", f"{airtime_us / us:.1f}x"]
        )
    print(f"encode_into, one {lifi_phy.MAX_PAYLOAD}-byte frame, MicroPython unix port (64 KB heap)")
    print_table(["frame", "encode us", "airtime us", "airtime / encode"], rows)
    return {
        "chip_rate_hz": chip_rate_hz,
        "goodput": goodput,
        "micropython_encode_us": encode_us,
    }
