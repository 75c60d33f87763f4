"""The board console a technician uses to identify, inspect, configure and reboot a device.

pytest tests/device                                    # a sim board per test
pytest tests/device --port /dev/ttyACM0                # a real board (beacon firmware)
"""

import pytest
from device_console import Console

# pytest-embedded options may be set per test: these tests want its serial DUT
pytestmark = pytest.mark.parametrize("embedded_services", ["serial"], indirect=True)


@pytest.fixture
def console(dut):
    console = Console(dut)
    console.hello()
    return console


def test_identify_names_the_device_and_its_firmware(console):
    reply = console.call("identify")
    assert reply["ok"] is True
    assert set(reply["result"]) == {"id", "role", "fw", "board"}
    assert reply["result"]["role"] == "beacon"


def test_info_reports_uptime_boots_and_heap(console):
    info = console.call("info")["result"]
    assert info["app"] == "beacon"
    assert info["boots"] >= 1
    assert info["heap_free"] > 0 and info["heap_used"] > 0
    assert info["uptime_s"] >= 0


def test_config_set_is_read_back_and_survives_a_reboot(console):
    reply = console.call("config-set", {"values": {"major": 42, "label": "salle 3, vitrine B"}})
    assert reply == {"id": reply["id"], "ok": True,
                     "result": {"saved": ["label", "major"], "reboot_needed": False}}  # fmt: skip
    assert console.call("config-get", {"key": "major"})["result"] == {"major": 42}
    boots = console.call("info")["result"]["boots"]

    assert console.reboot()["role"] == "beacon"
    info = console.call("info")["result"]
    assert info["boots"] == boots + 1
    assert info["label"] == "salle 3, vitrine B"
    assert console.call("config-get", {"key": "major"})["result"] == {"major": 42}


def test_a_new_id_is_taken_after_a_reboot(console):
    reply = console.call("config-set", {"values": {"id": "bcn-hall-7"}})
    assert reply["result"]["reboot_needed"] is True
    assert console.reboot()["id"] == "bcn-hall-7"


@pytest.mark.parametrize(
    ("command", "args", "error"),
    [
        ("selfdestruct", None, "unknown command 'selfdestruct'; known: "),
        ("config-set", {"values": {"major": "seven"}}, "major must be int, got 'seven'"),
        ("config-set", {"values": {"colour": "red"}}, "unknown config key 'colour'; known: "),
        ("config-set", {"values": {"id": "Not An Id"}}, "id must match [a-z0-9][a-z0-9-]{0,63}"),
        ("config-set", {}, "config-set needs values: a non-empty map"),
        ("config-get", {"key": "colour"}, "unknown config key 'colour'"),
    ],
)
def test_bad_commands_get_an_error_naming_what_is_wrong(console, command, args, error):
    reply = console.call(command, args)
    assert reply["ok"] is False
    assert reply["error"].startswith(error)
    # and the console keeps working
    assert console.call("identify")["ok"] is True
