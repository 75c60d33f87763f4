"""The README's demo command runs the demo; here is the demo itself, shortened: a street of real
firmware sim boards, a beacon and a Li-Fi luminaire, the BLE air, the real gateway, a real
broker."""

import re
import subprocess
import sys
from pathlib import Path

LUCIOLE = str(Path(sys.executable).parent / "luciole")


def test_demo_shows_the_city_the_street_and_the_beacon():
    done = subprocess.run(
        [LUCIOLE, "demo", "--seconds", "20", "--bays", "4", "--speed", "30"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "street      4 bays of rue-ernest-renan" in out
    # every bay is published unknown, then as its sensor reports it (at boot, not at the
    # 10-minute heartbeat)
    for bay in range(4):
        assert re.search(rf"parking/spots/bay-00{bay}\s+unknown", out)
        assert re.search(rf"parking/spots/bay-00{bay}\s+(free|occupied)", out)
        assert re.search(rf"devices/ps-bay-00{bay}/status\s+online", out)
    assert re.search(r"parking/sites/rue-ernest-renan\s+\d+ free, \d+ occupied of 4", out)
    assert re.search(r"museum/beacons/bcn-hall\s+major 3, minor 1, rssi -\d+", out)
    # the CMS's exhibit goes on air through the gateway and the luminaire, and a visitor under
    # the light receives it; the luminaire stays online though it sends nothing of its own
    assert re.search(r"la-joconde/broadcast\s+on-air, version 1 \(lum-joconde on-air\)", out)
    assert re.search(r"visitor-1 under lum-joconde\s+received version 1 by light: ", out)
    assert not re.search(r"devices/lum-joconde/status\s+offline", out)
    matching = int(re.search(r"matches the street for (\d) of 4 bays", out).group(1))
    assert matching >= 3  # a change in the last seconds may still be on its way


def test_demo_refuses_a_bad_option_in_one_line():
    done = subprocess.run(
        [LUCIOLE, "demo", "--bays", "0"], capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == ["luciole demo: --bays must be 1 to 30, got 0"]
