"""Who may import what (DESIGN.md section 3), checked on the source of every module."""

import ast
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

# What MicroPython offers protocol code; cbor2 and cryptography are CPython accelerators that the
# protocol modules import optionally.
PURE = {"binascii", "struct", "json", "io", "math", "hashlib", "micropython", "cryptolib"}
ACCELERATORS = {"cbor2", "cryptography"}
MICROPYTHON_RUNTIME = PURE | {"asyncio", "time", "os", "sys", "gc", "select", "errno", "random"}

RULES = {
    # folder: (allowed top-level modules, forbidden top-level modules)
    "protocols": (PURE | ACCELERATORS, None),
    "firmware": (MICROPYTHON_RUNTIME | {"protocols", "firmware", "boards"}, None),
    "edge": (None, {"simulators", "luciole.simulators", "firmware", "boards"}),
}


def imports(path):
    tree = ast.parse(path.read_text(), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            yield node.lineno, node.module


def violations(folder):
    allowed, forbidden = RULES[folder]
    for path in sorted((REPO / folder).rglob("*.py")):
        for line, module in imports(path):
            top = module.split(".")[0]
            dotted = ".".join(module.split(".")[:2])
            if allowed is not None and top not in allowed:
                yield f"{path.relative_to(REPO)}:{line} imports {module}"
            if forbidden is not None and (top in forbidden or dotted in forbidden):
                yield f"{path.relative_to(REPO)}:{line} imports {module}"


@pytest.mark.parametrize("folder", sorted(RULES))
def test_imports_respect_the_layers(folder):
    assert list(violations(folder)) == []


def test_the_check_catches_a_forbidden_import(tmp_path, monkeypatch):
    (tmp_path / "edge").mkdir()
    (tmp_path / "edge" / "bad.py").write_text("from luciole.simulators import world\n")
    monkeypatch.setattr(sys.modules[__name__], "REPO", tmp_path)
    assert list(violations("edge")) == ["edge/bad.py:1 imports luciole.simulators"]
