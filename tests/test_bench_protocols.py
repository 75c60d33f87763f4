"""`luciole bench protocols` runs on both interpreters and ends with its JSON line. Speed itself
is never asserted: it is what the bench reports."""

import json
import subprocess
import sys
from pathlib import Path

LUCIOLE = Path(sys.executable).parent / "luciole"

BOTH = {
    "link_frame",
    "senml_encode_cbor",
    "senml_encode_json",
    "senml_decode_cbor",
    "bthome_decode",
    "bthome_encode",
    "cbor_compact",
}


def test_bench_protocols_ends_with_its_json_line():
    done = subprocess.run(
        [str(LUCIOLE), "bench", "protocols"], capture_output=True, text=True, timeout=180
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    result = json.loads(lines[-1])
    assert result["bench"] == "protocols"
    assert set(result["cpython_us"]) == BOTH | {"cbor_cbor2"}
    assert set(result["micropython_us"]) == BOTH
    for us in [*result["cpython_us"].values(), *result["micropython_us"].values()]:
        assert isinstance(us, float) and us > 0
    assert result["compact_vs_cbor2"] > 0
    assert result["micropython_heap"] == "64k"
    # the table for people comes first
    assert any(line.startswith("operation") for line in lines[:-1])
