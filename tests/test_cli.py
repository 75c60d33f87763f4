"""The `luciole` command as technicians and integrators run it: the installed executable, in a
subprocess. Known vectors come from tests/vectors/*.json (RFC 8949, RFC 8428, the BTHome
specification's example, the device-link worked example)."""

import json
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

LUCIOLE = Path(sys.executable).parent / "luciole"
VECTORS = Path(__file__).resolve().parent / "vectors"

KEY = "231d39c1d7cc1ab1aee224cd096db932"  # the BTHome specification's example
MAC = "54:48:E6:8F:80:A5"


def luciole(*args, stdin=""):
    return subprocess.run(
        [str(LUCIOLE), *args], input=stdin, capture_output=True, text=True, timeout=60
    )


def decoded(*args, stdin=""):
    done = luciole(*args, stdin=stdin)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    lines = done.stdout.splitlines()
    assert len(lines) == 1, "not a terminal: one compact line"
    return json.loads(lines[0])


def vector(name, vector_id):
    for item in json.loads((VECTORS / f"{name}.json").read_text()):
        if item["id"] == vector_id:
            return item
    raise KeyError(vector_id)


def cli_json(desc):
    """A vector's expected value ({"$bytes"}, {"$tag"}, ...) as `luciole decode` writes it."""
    if isinstance(desc, list):
        return [cli_json(item) for item in desc]
    if isinstance(desc, dict):
        if "$bytes" in desc:
            return desc["$bytes"]
        if "$float" in desc:
            return {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}[desc["$float"]]
        if "$tag" in desc:
            return {"tag": desc["$tag"], "value": cli_json(desc["value"])}
        if "$map" in desc:
            return {
                k if isinstance(k, str) else json.dumps(k): cli_json(v) for k, v in desc["$map"]
            }
        return {k: cli_json(v) for k, v in desc.items()}
    return desc


def test_version():
    done = luciole("--version")
    assert done.returncode == 0
    assert done.stdout.strip() == "luciole " + version("luciole")


def test_help_lists_the_commands():
    done = luciole("--help")
    assert done.returncode == 0
    for command in ("decode", "encode", "bench", "gateway"):
        assert f"    {command} " in done.stdout


@pytest.mark.parametrize("command", ["decode", "encode"])
def test_help_has_examples(command):
    done = luciole(command, "--help")
    assert done.returncode == 0
    assert "examples:" in done.stdout
    assert f"luciole {command} " in done.stdout.split("examples:")[1]


# decode: each kind on a known vector


@pytest.mark.parametrize(
    "vector_id",
    [
        "appendix-a-a26161016162820203",  # {"a": 1, "b": [2, 3]}
        "appendix-a-a201020304",  # integer keys
        "appendix-a-4401020304",  # a byte string
        "appendix-a-c11a514b67b0",  # tag 1
        "appendix-a-d818456449455446",  # tag 24 of bytes
        "appendix-a-c249010000000000000000",  # a bignum is a number
        "appendix-a-f97e00",  # NaN
        "appendix-a-f9fc00",  # -Infinity
        "appendix-a-5f42010243030405ff",  # indefinite-length byte string
        "appendix-a-fb3ff199999999999a",  # 1.1
    ],
)
def test_decode_cbor_rfc8949(vector_id):
    v = vector("cbor-rfc8949", vector_id)
    assert decoded("decode", "cbor", v["input"]) == cli_json(v["expected"])


def test_decode_cbor_accepts_spaces_colons_and_0x():
    assert decoded("decode", "cbor", "a2 61 61 01", "0x61:62:82:02:03") == {"a": 1, "b": [2, 3]}


def test_decode_cbor_keeps_every_tag():
    # tag 0 (date/time text) stays a tag, as the compact codec on the devices keeps it
    out = decoded("decode", "cbor", "c074323031332d30332d32315432303a30343a30305a")
    assert out == {"tag": 0, "value": "2013-03-21T20:04:00Z"}


def test_decode_senml_cbor_rfc8428():
    pack = vector("senml-rfc8428", "decode-cbor-s6")
    resolved = vector("senml-rfc8428", "decode-cbor-s6-resolved")
    now = str(resolved["input"]["now_s"])
    out = decoded("decode", "senml", pack["input"], "--now", now)
    assert out == {"pack": pack["expected"], "resolved": resolved["expected"]}


def test_decode_senml_json_text():
    v = vector("senml-rfc8428", "decode-json-s5.1.2-multiple")
    out = decoded("decode", "senml", v["input"], "--now", "1700000000")
    assert out["pack"] == v["expected"]
    assert [r["n"] for r in out["resolved"]] == [
        "urn:dev:ow:10e2073a01080063:voltage",
        "urn:dev:ow:10e2073a01080063:current",
    ]
    assert {r["t"] for r in out["resolved"]} == {1700000000}


def test_decode_frame_with_a_cbor_body():
    # docs/device-link.md's worked example: a READING, seq 7, ACK requested, {"temp": 10.0}
    wire = "04 01 02 01 0a 07 a1 64 74 65 6d 70 f9 49 05 a0 87 c2 23 00"
    assert decoded("decode", "frame", wire) == {
        "type": "READING",
        "seq": 7,
        "flags": 1,
        "ack_requested": True,
        "body_length": 9,
        "body_format": "cbor",
        "body": {"temp": 10.0},
    }


def test_decode_frame_with_a_body_that_is_not_cbor():
    v = vector("link-frames", "decode-reading-ack")
    out = decoded("decode", "frame", v["input"])
    assert (out["type"], out["seq"], out["flags"], out["ack_requested"]) == ("READING", 7, 1, True)
    assert out["body_format"] == "hex"
    assert out["body"] == v["expected"]["body"]


def test_decode_frame_ack_without_delimiter():
    v = vector("link-frames", "decode-ack")
    out = decoded("decode", "frame", v["input"].removesuffix("00"))
    assert out["type"] == "ACK"
    assert out["seq"] == 42
    assert (out["body_format"], out["body"], out["body_length"]) == ("empty", None, 0)


def test_decode_ibeacon_advert_and_payload():
    advert = vector("ble-adv", "ibeacon-advert")["input"]
    v = vector("ble-ibeacon", "apple-airlocate")
    assert decoded("decode", "ibeacon", advert) == v["expected"]
    assert decoded("decode", "ibeacon", "--payload", v["input"]) == v["expected"]


def test_decode_eddystone_advert_and_payload():
    advert = vector("ble-adv", "eddystone-uid-advert")["input"]
    assert (
        decoded("decode", "eddystone", advert)
        == vector("ble-eddystone", "uid-20-bytes")["expected"]
    )
    tlm = vector("ble-eddystone", "tlm-negative-temperature")
    assert decoded("decode", "eddystone", "--payload", tlm["input"]) == tlm["expected"]


def test_decode_bthome_plaintext_advert():
    advert = vector("ble-adv", "bthome-spec-example")["input"]
    assert decoded("decode", "bthome", advert) == vector("ble-bthome", "spec-plaintext")["expected"]


def test_decode_bthome_encrypted_advert_and_payload():
    v = vector("ble-bthome", "spec-encrypted")
    data = v["input"]["data"]
    advert = "020106" + f"{len(data) // 2 + 3:02x}16d2fc" + data  # flags, service data 0xFCD2
    assert decoded("decode", "bthome", advert, "--key", KEY, "--mac", MAC) == v["expected"]
    out = decoded("decode", "bthome", "--payload", data, "--key", KEY, "--mac", MAC.lower())
    assert out == v["expected"]
    assert out["measurements"][0] == {"id": 2, "name": "temperature", "value": 25.06, "unit": "Cel"}


def test_decode_reads_hex_from_stdin():
    assert decoded("decode", "cbor", "-", stdin="a2616101\n6162820203\n") == {"a": 1, "b": [2, 3]}


def test_decode_compact_is_one_line():
    done = luciole("decode", "cbor", "--compact", "a26161016162820203")
    assert done.stdout == '{"a":1,"b":[2,3]}\n'


# encode senml


def test_encode_senml_rfc8428():
    v = vector("senml-rfc8428", "encode-cbor-s6")
    done = luciole("encode", "senml", stdin=json.dumps(v["input"], indent=2))
    assert done.returncode == 0, done.stderr
    assert done.stdout == v["expected"] + "\n"


def test_encode_senml_json_is_normalised():
    v = vector("senml-rfc8428", "cbor-to-json-s6")
    pack = json.loads(v["expected"])
    done = luciole("encode", "senml", "--json", stdin=json.dumps(pack, indent=2))
    assert done.returncode == 0, done.stderr
    assert done.stdout == v["expected"] + "\n"


@pytest.mark.parametrize(
    "vector_id",
    [
        "decode-json-s5.1.2-base-time-and-version",
        "decode-json-s5.1.5-data-types",  # vs, vb, vd
        "decode-json-s5.1.7-thermostat",
    ],
)
def test_encode_senml_round_trips_with_decode_senml(vector_id):
    v = vector("senml-rfc8428", vector_id)
    done = luciole("encode", "senml", stdin=v["input"])
    assert done.returncode == 0, done.stderr
    cbor_hex = done.stdout.strip()
    # the pack comes back as the SenML JSON that went in (vd in base64url)...
    again = decoded("decode", "senml", cbor_hex, "--now", "1700000000")["pack"]
    assert again == json.loads(v["input"])
    # ...and goes back in as it came out
    assert luciole("encode", "senml", stdin=json.dumps(again)).stdout.strip() == cbor_hex


# bad input: one line on stderr, exit status 2, never a traceback

ENCRYPTED = vector("ble-bthome", "spec-encrypted")["input"]["data"]

BAD = [
    (["decode", "cbor", "zz"], "", "not hex"),
    (["decode", "cbor", "abc"], "", "odd number of hex digits"),
    (["decode", "cbor", ""], "", "empty"),
    (["decode", "cbor", "a2"], "", "cbor:"),
    (["decode", "cbor", "0000"], "", "1 byte after"),
    (["decode", "cbor", "62c328"], "", "utf-8"),
    (["decode", "cbor", "a201020103"], "", "Duplicate map key"),
    (["decode", "cbor", "81" * 40 + "00"], "", "depth"),
    (["decode", "cbor", "-"], "xyz\n", "not hex"),
    (["decode", "gif", "00"], "", "invalid choice"),
    (["decode"], "", "required"),
    (["decode", "cbor", "00", "--bogus"], "", "unrecognized arguments"),
    (["decode", "cbor", "00", "--key", KEY], "", "bthome only"),
    (["decode", "frame", "00", "--payload"], "", "--payload"),
    (["decode", "senml", "00"], "", "senml:"),
    (["decode", "senml", '[{"n":"temp","v":'], "", "not JSON: Expecting value: line 1"),
    (["decode", "senml", '[{"n":"temp"}]'], "", "no value"),
    (["decode", "senml", '[{"n":"temp","v":1}]', "--now", "later"], "", "--now"),
    (["decode", "frame", "0401"], "", "COBS"),
    (["decode", "frame", "040102010a07a16474656d70f94905a087c22400"], "", "CRC-32 mismatch"),
    (["decode", "frame", "03010601062aa748920500" * 2], "", "more than one frame"),
    (["decode", "ibeacon", "0215e2c56db5dffb48d2b060d0f5a71096e00001000ac5"], "", "--payload"),
    (["decode", "ibeacon", "--payload", "0215e2c56db5dffb48d2b060d0f5a71096e000"], "", "23 bytes"),
    (["decode", "eddystone", vector("ble-adv", "ibeacon-advert")["input"]], "", "0xFEAA"),
    (["decode", "eddystone", "--payload", "30"], "", "unsupported Eddystone frame"),
    (["decode", "bthome", "--payload", ENCRYPTED], "", "encrypted: give the device's key"),
    (["decode", "bthome", "--payload", ENCRYPTED, "--key", KEY], "", "MAC"),
    (
        ["decode", "bthome", "--payload", ENCRYPTED, "--key", "00" * 16, "--mac", MAC],
        "",
        "bthome: wrong key or corrupted frame (MIC check failed",
    ),
    (
        ["decode", "bthome", "--payload", ENCRYPTED, "--key", KEY, "--mac", "54:48:E6:8F:80:A6"],
        "",
        "MIC check failed",
    ),
    (["decode", "bthome", "--payload", ENCRYPTED, "--key", "231d39", "--mac", MAC], "", "32 hex"),
    (["decode", "bthome", "--payload", ENCRYPTED, "--key", "xy" * 16, "--mac", MAC], "", "hex"),
    (["decode", "bthome", "--payload", ENCRYPTED, "--key", KEY, "--mac", "54:48"], "", "MAC"),
    (
        ["decode", "bthome", "--payload", "4002c40903bf13", "--key", KEY, "--mac", MAC],
        "",
        "plaintext",
    ),
    (["decode", "bthome", "--payload", "2002ca09"], "", "version"),
    (["encode", "senml"], "", "no SenML JSON"),
    (["encode", "senml"], '[{"n":"temp","v":1},', "not JSON"),
    (["encode", "senml"], "\udcff", "not UTF-8"),
    (["encode", "senml"], '[{"n":"temp","v":1,"vs":"x"}]', "more than one of v"),
    (["encode", "senml"], '{"n":"temp","v":1}', "array of one or more records"),
    (["encode", "senml"], '[{"n":"temp","vd":"!!"}]', "base64url"),
    (["encode", "cbor"], "", "invalid choice"),
]


@pytest.mark.parametrize(("args", "stdin", "says"), BAD, ids=[" ".join(b[0])[:60] for b in BAD])
def test_bad_input_is_one_line_and_exit_2(args, stdin, says):
    done = subprocess.run(
        [str(LUCIOLE), *args],
        input=stdin.encode("utf-8", "surrogateescape"),
        capture_output=True,
        timeout=60,
    )
    stderr = done.stderr.decode()
    assert done.returncode == 2, stderr
    assert "Traceback" not in stderr
    assert done.stdout == b""
    lines = stderr.splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"luciole {args[0]}: ")
    assert says in lines[0]
