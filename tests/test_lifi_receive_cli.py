"""`luciole receive` end to end: the gateway's carousel, the PHY's frames, the optical channel's
photodiode samples in a file, and the visitor's files out byte for byte; bad input in one line."""

import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from luciole.edge import lifi_carousel
from luciole.edge.cli import main
from luciole.protocols import lifi_phy
from luciole.simulators.optical import OpticalChannel

LUCIOLE = Path(sys.executable).parent / "luciole"
CHIP_RATE_HZ = 1_000_000
SAMPLES_PER_CHIP = 4
RNG = random.Random(11)
SUMMARY = "# La Joconde\nLéonard de Vinci, vers 1503.\n".encode()
DATA = {"summary": SUMMARY, "photo": RNG.randbytes(4000), "audio-fr": RNG.randbytes(2500)}
ITEMS = [
    lifi_carousel.Item("summary", "text/markdown", 0, SUMMARY),
    lifi_carousel.Item("photo", "image/webp", 1, DATA["photo"]),
    lifi_carousel.Item("audio-fr", "audio/ogg", 1, DATA["audio-fr"]),
]
FILES = {"summary.md": SUMMARY, "photo.webp": DATA["photo"], "audio-fr.ogg": DATA["audio-fr"]}


def _samples(frames, line_code, **channel):
    light = OpticalChannel(CHIP_RATE_HZ, SAMPLES_PER_CHIP, seed=5, **channel)
    parts = [light.idle(300)]
    parts += [light.transmit(lifi_phy.encode_frame(f, line_code)) for f in frames]
    return np.concatenate(parts)


def _args(samples, out):
    rate = str(CHIP_RATE_HZ * SAMPLES_PER_CHIP)
    return [
        "receive",
        str(samples),
        "--sample-rate",
        rate,
        "--chip-rate",
        "1000000",
        "--out",
        str(out),
    ]


def test_a_visitor_joining_mid_loop_gets_every_file_byte_for_byte(tmp_path):
    carousel = lifi_carousel.build("joconde", 2, ITEMS, lifi_phy.MAX_PAYLOAD)
    joined = carousel.frames[37:] + carousel.frames[:37]  # anywhere in the loop
    # people walk through the light: whole frames are lost, the fountain code does not care
    samples = _samples(joined[:100], lifi_phy.CODE_4B6B, occlusion_rate_hz=1.0)
    path = tmp_path / "hall.f32"
    samples.astype("<f4").tofile(path)
    done = subprocess.run(
        [str(LUCIOLE), *_args(path, tmp_path / "out")], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    for name, data in FILES.items():
        assert (tmp_path / "out" / name).read_bytes() == data
    assert "exhibit joconde, content version 2:" in done.stdout
    assert "  | Léonard de Vinci, vers 1503." in done.stdout  # text objects are shown
    assert "all content received" in done.stdout.splitlines()[-1]
    assert not list((tmp_path / "out").glob("*.part"))


def test_npy_samples_and_manchester_frames(tmp_path, capsys):
    carousel = lifi_carousel.build("joconde", 2, ITEMS, lifi_phy.MAX_PAYLOAD)
    path = tmp_path / "hall.npy"
    np.save(path, _samples(carousel.frames[:30], lifi_phy.MANCHESTER))
    assert main(_args(path, tmp_path / "out")) == 0
    assert {p.name: p.read_bytes() for p in (tmp_path / "out").iterdir()} == FILES


def test_a_recording_too_short_says_what_is_missing(tmp_path, capsys):
    carousel = lifi_carousel.build("joconde", 2, ITEMS, lifi_phy.MAX_PAYLOAD)
    path = tmp_path / "short.npy"
    np.save(path, _samples(carousel.frames[:3], lifi_phy.MANCHESTER))
    assert main(_args(path, tmp_path / "out")) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "content incomplete" in err and "photo" in err and "audio-fr" in err
    assert not (tmp_path / "out" / "photo.webp").exists()


def test_light_without_frames_says_no_directory(tmp_path, capsys):
    path = tmp_path / "dark.npy"
    np.save(path, np.zeros(100_000, dtype=np.float32))
    assert main(_args(path, tmp_path / "out")) == 1
    assert capsys.readouterr().err.startswith("luciole receive: no directory heard in")


def _bad_inputs(tmp):
    (tmp / "odd.f32").write_bytes(b"\x00" * 5)
    (tmp / "empty.f32").write_bytes(b"")
    np.save(tmp / "flat.npy", np.zeros((4, 4)))
    np.save(tmp / "words.npy", np.array(["a", "b"]))
    (tmp / "broken.npy").write_bytes(b"\x93NUMPY garbage")
    (tmp / "afile").write_text("x")
    np.save(tmp / "ok.npy", np.zeros(10))
    good = _args(tmp / "ok.npy", tmp / "out")
    return [
        (_args(tmp / "nope.f32", tmp / "out"), "nope.f32: no such file"),
        (_args(tmp / "odd.f32", tmp / "out"), "5 bytes is not a whole number of float32 samples"),
        (_args(tmp / "empty.f32", tmp / "out"), "empty.f32: no samples"),
        (_args(tmp / "flat.npy", tmp / "out"), "want a 1-D array of real numbers, found 2-D"),
        (_args(tmp / "words.npy", tmp / "out"), "want a 1-D array of real numbers"),
        (_args(tmp / "broken.npy", tmp / "out"), "cannot read"),
        (_args(tmp / "ok.npy", tmp / "afile"), "afile: exists and is not a folder"),
        (
            [*good[:3], "1500000", *good[4:]],
            "--sample-rate 1500000 --chip-rate 1000000: need at least",
        ),
        ([*good[:3], "-4", *good[4:]], "--sample-rate -4"),
        ([*good[:3], "fast", *good[4:]], "invalid float value: 'fast'"),
        (good[:2] + good[4:], "the following arguments are required: --sample-rate"),
    ]


def _status(argv):
    """main's exit status, whether returned or raised by argparse."""
    try:
        return main(argv)
    except SystemExit as e:
        return e.code


def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys):
    for argv, message in _bad_inputs(tmp_path):
        assert _status(argv) == 2, argv
        err = capsys.readouterr().err
        assert message in err, (argv, err)
        assert err.count("\n") == 1 and "Traceback" not in err, err
        assert not (tmp_path / "out").exists()


def test_help_documents_the_sample_format(capsys):
    with pytest.raises(SystemExit):
        main(["receive", "--help"])
    out = capsys.readouterr().out
    assert "raw float32, little-endian" in out
    assert ".npy" in out
    assert "--out DIR" in out
