"""The shared test vectors (tests/vectors/*.json), each run under CPython and under MicroPython."""

import json
from collections import defaultdict
from pathlib import Path

import pytest
import runner
from mplane import run_batch

VECTOR_DIR = Path(__file__).parent / "vectors"


def _load():
    cases = []
    for path in sorted(VECTOR_DIR.glob("*.json")):
        for vector in json.loads(path.read_text()):
            vector = dict(vector, id=f"{path.stem}:{vector['id']}")
            cases.append(vector)
    ids = [v["id"] for v in cases]
    assert len(ids) == len(set(ids)), "vector ids must be unique within a file"
    return cases


VECTORS = _load()


@pytest.fixture(scope="session")
def micropython_results(micropython):
    by_domain = defaultdict(list)
    for vector in VECTORS:
        by_domain[vector["op"].split(".")[0]].append(vector)
    results = {}
    for batch in by_domain.values():
        results.update(run_batch(micropython, batch))
    return results


def check(vector, result):
    if "error" in vector:
        assert result.get("error") == vector["error"], result
        if "message" in vector:
            assert vector["message"] in result["message"], result
    else:
        assert "error" not in result, result
        assert result["result"] == vector["expected"]


CASES = [(lane, v) for v in VECTORS for lane in ("cpython", "micropython")]


@pytest.mark.parametrize(("lane", "vector"), CASES, ids=[f"{lane}-{v['id']}" for lane, v in CASES])
def test_vector(lane, vector, request):
    if lane == "cpython":
        check(vector, runner.run(vector))
    else:
        check(vector, request.getfixturevalue("micropython_results")[vector["id"]])
