"""The real firmware in the simulated world, bridged by the real gateway: a beacon sim board is
heard over the BLE air (bleak on a private D-Bus) and answers the city's commands over its serial
console (a pty), with Mosquitto in between."""

import json

from harness import GatewayProcess, Subscriber, gateway_config, operator, wait_until

from luciole.simulators.world import BoardSpec, World

PREFIX = "luciole/v1/issy"
MAC = "C0:FF:EE:00:00:42"


async def test_a_sim_beacon_reaches_the_city_by_air_and_by_wire(tmp_path, broker, bluez):
    async with World(tmp_path / "world", speed=2, air=bluez) as world:
        spec = BoardSpec("bcn-sim", "beacon", position_m=(4.0, 3.0), mac=MAC,
                         config={"major": 5, "minor": 9}, battery_mv=2870)  # fmt: skip
        board = world.add(spec)
        extra = (
            '[ble]\nwatchdog_s = 30.0\n[[devices]]\nid = "bcn-sim"\nkind = "beacon"\n'
            f'mac = "{MAC}"\n'
        )
        config = gateway_config(tmp_path, broker, [board.tty_path], extra=extra)
        gw = GatewayProcess(config, tmp_path / "gw.log").start()
        topics = f"{PREFIX}/museum/beacons/bcn-sim"
        try:
            async with Subscriber(broker, topics).running() as city:

                def complete():
                    assert gw.process.poll() is None, gw.log()
                    if not city.messages:
                        return False
                    health = json.loads(city.messages[-1].payload)
                    return health.get("major") is not None and health.get("namespace")

                await wait_until(complete, 30, "beacon health with iBeacon and Eddystone")
            health = json.loads(city.messages[-1].payload)
            assert (health["major"], health["minor"]) == (5, 9)
            assert health["battery_mv"] == 2870
            assert health["instance"] == "000000000001"
            assert -80 < health["rssi"] < -60  # 5 m from the gateway's adapter
            async with operator(broker) as ask:
                info = await ask("bcn-sim", "info", timeout_s=20)
                assert info["ok"], info
                assert info["result"]["app"] == "beacon"
                assert info["result"]["board"] == "host_sim"
                bad_major = json.dumps({"args": {"values": {"major": "x"}}}).encode()
                refused = await ask("bcn-sim", "config-set", bad_major)
                assert refused == {"ok": False, "error": "major must be int, got 'x'"}
        finally:
            gw.stop()
