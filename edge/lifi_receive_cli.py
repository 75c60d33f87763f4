"""`luciole receive`: a visitor's receiver, from recorded photodiode samples to exhibit content."""

import argparse
import itertools
import os
import sys
from pathlib import Path

from luciole.edge.cli import UsageError

CHUNK_SAMPLES = 1 << 18  # fed to the receiver at a time: memory stays flat for long recordings
EXTENSIONS = {
    "text/plain": ".txt",
    "text/markdown": ".md",
    "text/html": ".html",
    "image/jpeg": ".jpg",
    "image/png": ".png",
    "image/webp": ".webp",
    "image/avif": ".avif",
    "image/svg+xml": ".svg",
    "audio/mpeg": ".mp3",
    "audio/ogg": ".ogg",
    "audio/opus": ".opus",
    "audio/aac": ".aac",
    "audio/mp4": ".m4a",
    "video/mp4": ".mp4",
    "video/webm": ".webm",
}

EPILOG = """\
SAMPLES is a recording of the photodiode, one sample per value, at --sample-rate:
  *.npy      a NumPy array file (numpy.save) of one dimension, any real number type
  otherwise  raw float32, little-endian, no header (numpy's '<f4'; e.g. from SoapySDR or GNU Radio)
Levels are arbitrary: ambient light and gain do not matter. The line code (Manchester or 4B6B) and
the dimming level are read from each frame.

Prints the directory when it is heard, progress per object, every text object in full, and one
line per object saved to DIR as ID.EXT (written whole, after its SHA-256 matched the directory:
an object that does not match is reported and never saved). Exit status: 0 when all the content
arrived, 1 when the recording ended first, 2 on bad arguments or an unreadable file.

example:
  luciole receive hall-3.f32 --sample-rate 4000000 --chip-rate 1000000 --out ./exhibit
"""


def receive_command(subparsers):
    parser = subparsers.add_parser(
        "receive",
        help="receive Li-Fi exhibit content from recorded photodiode samples",
        description="Decodes a Li-Fi luminaire's light as a visitor's receiver does: frames, "
        "fountain-coded symbols, then the exhibit's objects, each checked against its SHA-256.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("samples", metavar="SAMPLES", help="photodiode samples (.npy or raw f32)")
    parser.add_argument(
        "--sample-rate", type=float, required=True, metavar="HZ", help="samples per second"
    )
    parser.add_argument(
        "--chip-rate",
        type=float,
        default=1_000_000,
        metavar="HZ",
        help="the luminaire's chips per second (default 1000000)",
    )
    parser.add_argument(
        "--out", required=True, metavar="DIR", help="folder for the objects (created if needed)"
    )
    parser.set_defaults(handler=_run)


def _chunks(path):
    """The samples of path, a chunk at a time; UsageError naming what is wrong with the file."""
    import numpy as np

    try:
        if path.suffix == ".npy":
            samples = np.load(path, mmap_mode="r", allow_pickle=False)
            if samples.ndim != 1 or samples.dtype.kind not in "iuf":
                raise UsageError(
                    f"{path}: want a 1-D array of real numbers, found {samples.ndim}-D "
                    f"{samples.dtype}"
                )
        else:
            size = path.stat().st_size
            if size % 4:
                raise UsageError(f"{path}: {size} bytes is not a whole number of float32 samples")
            samples = np.memmap(path, dtype="<f4", mode="r") if size else np.zeros(0, "<f4")
    except (OSError, ValueError) as e:
        raise UsageError(f"cannot read {path}: {e}") from None
    if len(samples) == 0:
        raise UsageError(f"{path}: no samples")
    for start in range(0, len(samples), CHUNK_SAMPLES):
        yield samples[start : start + CHUNK_SAMPLES]


def _save(out, entry, data):
    target = out / (entry.id + EXTENSIONS.get(entry.type, ".bin"))
    partial = target.with_name(target.name + ".part")
    partial.write_bytes(data)
    os.replace(partial, target)
    return target


def _run(args):
    from luciole.edge import lifi_content
    from luciole.edge.lifi_rx import PhyReceiver

    try:
        phy = PhyReceiver(args.sample_rate, args.chip_rate)
    except ValueError as e:
        raise UsageError(
            f"--sample-rate {args.sample_rate:.0f} --chip-rate {args.chip_rate:.0f}: {e}"
        ) from None
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out}: exists and is not a folder")
    path = Path(args.samples)
    if not path.is_file():
        raise UsageError(f"{path}: no such file")
    chunks = _chunks(path)
    first = next(chunks)  # reads the file's header: a bad file stops here, before any output
    out.mkdir(parents=True, exist_ok=True)

    assembler = lifi_content.ContentAssembler()
    shown = {}  # object id -> progress quarter last printed
    for chunk in itertools.chain([first], chunks):
        for payload in phy.feed(chunk):
            for event in assembler.feed(payload):
                _show(event, out, shown)
        if assembler.complete():
            break
    seconds = phy.samples_seen / args.sample_rate
    stats = (
        f"{seconds:.2f} s of light, {phy.frames_ok} frames, "
        f"{phy.header_errors + phy.payload_errors} damaged, {assembler.rejected} rejected"
    )
    if assembler.complete():
        print(f"all content received in {stats}")
        return 0
    directory = assembler.directory
    if directory is None:
        reason = f"; last error: {assembler.last_error}" if assembler.last_error else ""
        print(f"luciole receive: no directory heard in {stats}{reason}", file=sys.stderr)
    else:
        print(
            f"luciole receive: content incomplete after {stats}: missing "
            + ", ".join(e.id for e in directory.objects if e.id not in assembler.presented()),
            file=sys.stderr,
        )
    return 1


def _show(event, out, shown):
    from luciole.edge import lifi_content

    if isinstance(event, lifi_content.ContentReplaced):
        replaced = "" if event.old_version is None else f" (replaces version {event.old_version})"
        print(f"exhibit {event.exhibit}, content version {event.version}{replaced}:")
        for e in event.objects:
            print(f"  {e.id}  {e.type}  {e.size} B  priority {e.priority}")
        shown.clear()
    elif isinstance(event, lifi_content.Progress):
        quarter = min(3, 4 * event.received // max(1, event.needed))
        if quarter > shown.get(event.object_id, 0):
            shown[event.object_id] = quarter
            print(f"  {event.object_id}: {event.received}/{event.needed} symbols")
    elif isinstance(event, lifi_content.ObjectComplete):
        target = _save(out, event.entry, event.data)
        print(f"  {event.entry.id}: complete, SHA-256 ok, saved {target}")
        if event.entry.type.startswith("text/"):
            text = event.data.decode("utf-8", errors="replace")
            print("  | " + text.rstrip("\n").replace("\n", "\n  | "))
    elif isinstance(event, lifi_content.HashMismatch):
        print(
            f"  {event.entry.id}: REJECTED, decoded bytes hash to {event.sha256.hex()[:16]}..., "
            f"not {event.entry.sha256.hex()[:16]}...; collecting it again"
        )
