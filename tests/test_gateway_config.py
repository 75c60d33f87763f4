"""Starting the gateway: broken configs stop it with one clear line; a missing broker does not."""

import asyncio
import json
import socket
import subprocess

import pytest
from harness import (
    LUCIOLE,
    GatewayProcess,
    Subscriber,
    gateway_config,
    http_get,
    scrape,
    wait_until,
)

from luciole.edge import config as gateway_config_module
from luciole.simulators.mosquitto import Mosquitto, free_port
from luciole.simulators.serial_device import SerialDevice

GOOD = """
[gateway]
id = "gw-mairie"
[broker]
host = "127.0.0.1"
"""


def check(tmp_path, text, *args):
    path = tmp_path / "gateway.toml"
    path.write_text(text)
    return subprocess.run(
        [LUCIOLE, "gateway", "--config", str(path), "--check-config", *args],
        capture_output=True,
        text=True,
        timeout=30,
    )


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("[gateway]\nid = ", "not valid TOML"),
        ("[broker]\nhost = 'x'\n", "gateway.id: required"),
        (GOOD + "port = 'abc'\n", "broker.port: expected an integer, got 'abc'"),
        (GOOD + "port = 70000\n", "broker.port: must be from 1 to 65535, got 70000"),
        (GOOD + "protocol = 'mqtt4'\n", "broker.protocol: must be mqtt5 or mqtt3.1.1"),
        (GOOD + "pasword = 'x'\n", "broker.pasword: unknown key"),
        (GOOD + "password_env = 'LUCIOLE_NOPE'\n", "environment variable LUCIOLE_NOPE is not set"),
        (GOOD + "ca_file = '/nonexistent/ca.pem'\n", "broker.ca_file: no such file"),
        ("[gateway]\nid = 'GW 1'\n", "gateway.id: must match"),
        (GOOD + "[[devices]]\nid = 'ps-1'\nkind = 'toaster'\n", "devices[0].kind: must be one"),
        (
            GOOD + "[[devices]]\nid = 'ps-1'\nkind = 'parking-sensor'\nkey = 'abc'\n",
            "devices[0].key: expected 32 hexadecimal digits",
        ),
        (GOOD + "[[serial]]\nbaud = 9600\n", "serial[0].port: required"),
        (GOOD + "reconnect_min_s = 60\n", "broker.reconnect_min_s: must not exceed"),
    ],
)
def test_a_broken_config_is_one_clear_line(tmp_path, text, says):
    done = check(tmp_path, text)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert str(tmp_path / "gateway.toml") in lines[0] and says in lines[0], lines[0]


def test_a_good_config_is_summarised(tmp_path, monkeypatch):
    (tmp_path / "pw").write_text("s3cret\n")
    done = check(tmp_path, GOOD + f"password_file = '{tmp_path / 'pw'}'\n")
    assert done.returncode == 0, done.stderr
    assert "ok: gateway gw-mairie" in done.stdout
    monkeypatch.setenv("LUCIOLE_PW", "from-env")
    path = tmp_path / "env.toml"
    path.write_text(GOOD + "password_env = 'LUCIOLE_PW'\n")
    assert gateway_config_module.load(path).broker.password == "from-env"
    path.write_text(GOOD + "password_file = 'pw'\n")  # relative to the config file's folder
    assert gateway_config_module.load(path).broker.password == "s3cret"


def test_a_missing_config_file_is_one_line(tmp_path):
    done = subprocess.run(
        [LUCIOLE, "gateway", "--config", str(tmp_path / "nope.toml")],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "cannot read" in done.stderr


async def test_unreachable_broker_at_start_keeps_buffering(tmp_path):
    """No broker when the gateway starts: it runs, accepts readings into its outbox, and
    delivers them all once the broker comes."""
    broker = Mosquitto(tmp_path / "broker", port=free_port())
    city = Subscriber(broker, "luciole/v1/issy/devices/+/telemetry")
    with broker:  # the city's persistent session exists before the gateway's first reading
        async with city.running():
            pass
    device = SerialDevice("ps-0001", tmp_path / "ttyLUC0")
    gw = GatewayProcess(gateway_config(tmp_path, broker, [device.path]), tmp_path / "gw.log")
    gw.start()
    try:
        await asyncio.wait_for(device.send_readings(300), 30)  # acknowledged: on disk
        assert gw.process.poll() is None, gw.log()
        assert "Connection refused" in gw.log()
        broker.start()
        async with city.running():
            await wait_until(lambda: len({m.seq for m in city.messages}) >= 300, 20, "backlog")
    finally:
        gw.stop()
        device.unplug()
        broker.stop()


@pytest.mark.parametrize("how", ["stop", "kill"])
async def test_the_gateway_status_says_offline_when_it_goes(tmp_path, how):
    """A clean stop sets the retained status to offline itself; a kill -9 leaves it to the last
    will. Either way a consumer arriving later reads offline."""
    status_topic = "luciole/v1/issy/gateways/gw-test/status"
    with Mosquitto(tmp_path / "broker") as broker:
        gw = GatewayProcess(gateway_config(tmp_path, broker), tmp_path / "gw.log").start()
        async with Subscriber(broker, status_topic, client_id="first").running() as city:
            await wait_until(lambda: city.messages, 10, "the birth message")
            assert json.loads(city.messages[-1].payload)["state"] == "online"
        gw.stop() if how == "stop" else gw.kill()
        async with Subscriber(broker, status_topic, client_id="later").running() as later:
            await wait_until(lambda: later.messages, 10, "the retained status")
            status = json.loads(later.messages[-1].payload)
            assert later.messages[-1].retained and status["state"] == "offline"


async def test_a_full_outbox_drops_the_oldest_counts_them_and_says_so(tmp_path):
    """The broker is away longer than the outbox holds: the oldest readings go, counted in the
    gateway status and /metrics; /healthz says 503 until the broker is back; logs are JSON."""
    broker = Mosquitto(tmp_path / "broker", port=free_port())
    city = Subscriber(broker, "luciole/v1/issy/#")
    with broker:
        async with city.running():
            pass
    device = SerialDevice("ps-0001", tmp_path / "ttyLUC0")
    http_port = free_port()
    config = gateway_config(
        tmp_path,
        broker,
        [device.path],
        max_messages=100,
        http_listen=f"127.0.0.1:{http_port}",
        log_format="json",
    )
    gw = GatewayProcess(config, tmp_path / "gw.log").start()
    try:
        await asyncio.wait_for(device.send_readings(250), 30)
        status, body = await http_get(http_port, "/healthz")
        assert status == 503 and json.loads(body)["broker"] == "disconnected"
        assert json.loads(body)["backlog"] == 100
        broker.start()
        async with city.running():
            telemetry = lambda: {m.seq for m in city.messages if m.seq is not None}  # noqa: E731
            await wait_until(lambda: len(telemetry()) >= 100, 20, "the newest 100 readings")
            await asyncio.sleep(0.5)
            assert telemetry() == set(range(150, 250)), "exactly the oldest 150 were dropped"
            statuses = lambda: [  # noqa: E731
                json.loads(m.payload) for m in city.messages if m.topic.endswith("gw-test/status")
            ]
            await wait_until(lambda: statuses(), 5, "the gateway status")
            assert statuses()[-1]["dropped"] == 150 and statuses()[-1]["state"] == "online"
        status, body = await http_get(http_port, "/healthz")
        assert status == 200 and json.loads(body)["broker"] == "connected"
        assert (await scrape(http_port))["luciole_dropped_messages"] == 150
        lines = [json.loads(line) for line in gw.log().splitlines() if line.startswith("{")]
        assert lines and all({"time", "level", "logger", "message"} <= set(e) for e in lines)
        assert len(lines) == len(gw.log().splitlines()), "every log line is JSON"
    finally:
        gw.stop()
        device.unplug()
        broker.stop()


def test_a_taken_metrics_port_is_one_line(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        path = tmp_path / "gateway.toml"
        path.write_text(
            f'[gateway]\nid = "gw-x"\ndata_dir = "{tmp_path}/data"\n'
            f'http_listen = "127.0.0.1:{port}"\n'
        )
        done = subprocess.run(
            [LUCIOLE, "gateway", "--config", str(path)], capture_output=True, text=True, timeout=30
        )
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "address already in use" in done.stderr, done.stderr
