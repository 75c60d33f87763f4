"""`luciole parking import` and `luciole parking export` through the real `luciole` command."""

import csv
import io
import json
import subprocess

import pytest
from harness import LUCIOLE

BAYS = "id,name,street,lat,lon\nb1,1,Rue Renan,48.8245,2.2707\nb2,2,Rue Renan,48.8246,2.2708\n"


def luciole(*args):
    return subprocess.run([LUCIOLE, *map(str, args)], capture_output=True, text=True)


@pytest.fixture
def config(tmp_path):
    path = tmp_path / "gateway.toml"
    path.write_text(
        f'[gateway]\nid = "gw-test"\ndata_dir = "{tmp_path / "data"}"\n[parking]\n'
        '[[devices]]\nid = "ps-1"\nkind = "parking-sensor"\nmac = "54:48:E6:8F:80:A5"\n'
        'spot = "b1"\n'
    )
    return path


@pytest.fixture
def bays(tmp_path):
    path = tmp_path / "bays.csv"
    path.write_text(BAYS + "Bay 3,3,Rue Renan,48.8247,2.2709\n")
    return path


def test_import_then_the_config_checks_and_export(tmp_path, config, bays):
    done = luciole("gateway", "--config", config, "--check-config")
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1
    assert "devices[0].spot: no bay 'b1' in the parking inventory" in done.stderr

    done = luciole("parking", "import", bays, "--config", config)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith(f"{bays}: imported 2 bays in 1 sites into ")
    assert lines[0].endswith("; 1 row(s) skipped")
    assert lines[1] == "skipped line 4: id = 'Bay 3': a bay id must match [a-z0-9][a-z0-9-]{0,63}"
    assert luciole("gateway", "--config", config, "--check-config").returncode == 0

    done = luciole("parking", "export", "--config", config, "--format", "csv")
    assert done.returncode == 0, done.stderr
    rows = list(csv.DictReader(io.StringIO(done.stdout)))
    assert [(r["id"], r["site"], r["status"], r["lat"]) for r in rows] == [
        ("b1", "rue-renan", "unknown", "48.8245"),
        ("b2", "rue-renan", "unknown", "48.8246"),
    ]

    out = tmp_path / "open-data" / "bays.geojson"
    out.parent.mkdir()
    out.write_text("the previous export")
    done = luciole("parking", "export", "--config", config, "--format", "geojson", "--output", out)
    assert done.returncode == 0, done.stderr
    document = json.loads(out.read_text())
    assert [f["id"] for f in document["features"]] == ["b1", "b2"]
    assert document["features"][0]["geometry"] == {
        "type": "Point",
        "coordinates": [2.2707, 48.8245],
    }
    assert list(out.parent.iterdir()) == [out]  # no temporary file left behind


def test_a_failing_import_keeps_the_previous_inventory(tmp_path, config, bays):
    assert luciole("parking", "import", bays, "--config", config).returncode == 0
    without_b1 = tmp_path / "new.csv"
    without_b1.write_text(BAYS.replace("b1,1", "b9,9"))
    done = luciole("parking", "import", without_b1, "--config", config)
    assert done.returncode == 2
    assert done.stderr == (
        "luciole parking: bay 'b1' (sensor ps-1) is not in the new inventory; nothing imported\n"
    )
    broken = tmp_path / "broken.csv"
    broken.write_text("name\nx\n")
    done = luciole("parking", "import", broken, "--config", config)
    assert done.returncode == 2
    assert done.stderr.startswith(f"luciole parking: {broken}: no bay id column")
    done = luciole("parking", "export", "--config", config, "--format", "csv")
    assert [r["id"] for r in csv.DictReader(io.StringIO(done.stdout))] == ["b1", "b2"]


def test_a_failing_export_leaves_the_previous_file(tmp_path, config, bays):
    assert luciole("parking", "import", bays, "--config", config).returncode == 0
    out = tmp_path / "missing-folder" / "bays.csv"
    done = luciole("parking", "export", "--config", config, "--format", "csv", "--output", out)
    assert done.returncode == 2
    assert done.stderr.startswith(f"luciole parking: {out}: cannot write")
    assert done.stderr.count("\n") == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["export", "--config", "{config}"], "the following arguments are required: --format"),
        (["export", "--config", "{config}", "--format", "xml"], "invalid choice: 'xml'"),
        (["import", "{tmp}/nope.csv", "--config", "{config}"], "nope.csv: cannot read"),
        (["import", "{bays}", "--config", "{tmp}/nope.toml"], "nope.toml: cannot read"),
        (["export", "--config", "{config}", "--format", "csv"], "no parking inventory in"),
    ],
)
def test_bad_arguments_are_one_line(tmp_path, config, bays, args, message):
    args = [a.format(config=config, bays=bays, tmp=tmp_path) for a in args]
    done = luciole("parking", *args)
    assert done.returncode == 2
    assert message in done.stderr
    assert done.stderr.count("\n") == 1
    assert "Traceback" not in done.stderr


def test_help_names_the_actions_and_the_formats():
    done = luciole("parking", "--help")
    assert done.returncode == 0
    assert "import" in done.stdout and "export" in done.stdout
    done = luciole("parking", "export", "--help")
    assert "{csv,geojson}" in done.stdout and "atomically" in done.stdout
