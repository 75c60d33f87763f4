# The parking sensor app: an in-ground magnetometer sampled at the detector's duty cycle, bay
# occupancy advertised as encrypted BTHome v2 (occupancy, battery, packet id) on every change
# (repeated) and as a heartbeat. Console commands: "calibrate" and "parking-status".
# Config keys: bthome_key (32 hex digits, required to advertise), parking_baseline_ut (written by
# calibrate), bthome_counter (encryption counter reservation, so it grows across reboots).
from binascii import unhexlify

import firmware.apps.energy as energy
from firmware.apps.parking_detector import HEARTBEAT_S, IDLE_MS, REPORT_REPEATS, Detector
from protocols.ble import adv_build as adv  # the building half only: less heap
from protocols.ble import bthome_encode as bthome  # the encoding half only: less heap

try:
    from micropython import const
except ImportError:

    def const(x):
        return x


REQUIRES = ("magnetometer", "radio", "battery")

_ADV_INTERVAL_MS = const(100)
_COUNTER_BLOCK = const(256)  # counters reserved in the config per write (flash wear)
_CELL_MAH = const(2600)
_EMPTY_MV = const(3000)  # battery percent: linear from 3.0 V empty to 4.2 V full (one Li-ion cell)
_FULL_MV = const(4200)
_OCCUPANCY = const(0x23)
_BATTERY = const(0x01)


async def main(hal, device):
    magnetometer = hal.open("magnetometer")
    radio = hal.open("radio")
    battery = hal.open("battery")
    clock = hal.clock
    detector = Detector(baseline=device.config.get("parking_baseline_ut", None))
    key = device.config.get("bthome_key", None)
    try:
        key = unhexlify(key) if isinstance(key, str) and len(key) == 32 else None
    except ValueError:
        key = None
    if key is None:
        device.log("error", "no valid bthome_key (32 hex digits) in config: not advertising")
    if detector.baseline is None:
        device.log("warning", "not calibrated: run calibrate with the bay empty")

    # at boot and after calibrate: the city (and the technician) learn the bay's state at once,
    # not at the next heartbeat
    report_now = True

    def calibrate(args):
        nonlocal report_now
        # a refusal is a ValueError saying why: the console replies with it
        baseline = detector.calibrate(bool(args.get("force", False)))
        device.config.update({"parking_baseline_ut": list(baseline)})
        report_now = True
        rounded = detector.status()["baseline_ut"]  # as parking-status shows it
        device.log("info", "calibrated: baseline %s uT" % (rounded,))
        return {"baseline_ut": rounded}

    def status(args):
        out = detector.status()
        out["battery_mv"] = battery.read_mv()
        out["energy"] = energy.report(
            hal.board["power_ua"], elapsed_s, detector.samples, adverts, bursts, _CELL_MAH
        )
        out["estimated_battery_years"] = out["energy"].pop("battery_years")
        return out

    # encrypted BTHome adverts: a packet id per report (its repeats share it), an encryption
    # counter per frame that keeps growing across reboots
    packet_id = 0
    counter = reserved = device.config.get("bthome_counter", 0)
    # the energy account's counts (the readings are the detector's)
    elapsed_s = 0.0
    adverts = bursts = 0

    async def send(repeats):
        nonlocal packet_id, counter, reserved, adverts, bursts
        battery_mv = battery.read_mv()
        if key is None:
            return
        # battery percent: linear from empty to full
        percent = (battery_mv - _EMPTY_MV) * 100 // (_FULL_MV - _EMPTY_MV)
        percent = 0 if percent < 0 else 100 if percent > 100 else percent
        if counter >= reserved:
            reserved = counter + _COUNTER_BLOCK
            device.config.update({"bthome_counter": reserved})
        packet_id = (packet_id + 1) & 0xFF
        frame = bthome.encode(
            [(_OCCUPANCY, 1 if detector.occupied else 0), (_BATTERY, percent)],
            mac=radio.address,
            key=key,
            counter=counter,
            packet_id=packet_id,
        )
        counter += 1
        radio.advertise(adv.build(service_data={bthome.UUID16: frame}), _ADV_INTERVAL_MS)
        await clock.sleep_ms(repeats * _ADV_INTERVAL_MS)
        radio.stop()
        adverts += repeats
        bursts += 1

    device.command("calibrate", calibrate)
    device.command("parking-status", status)

    last_ms = clock.ticks_ms()
    last_report_ms = last_ms
    wait_ms = 0
    while True:
        magnetometer.power(True)
        x, y, z = await magnetometer.read()
        magnetometer.power(False)
        now_ms = clock.ticks_ms()
        dt_ms = now_ms - last_ms
        if dt_ms < 0:  # the clock wrapped: take the sleep we asked for
            dt_ms = wait_ms
        last_ms = now_ms
        elapsed_s += dt_ms / 1000
        if detector.feed(dt_ms, x, y, z):
            device.log("info", "bay %s" % ("occupied" if detector.occupied else "vacant"))
            await send(REPORT_REPEATS)
            last_report_ms = now_ms
            report_now = False
        elif (
            detector.baseline is not None
            and detector.next_ms() == IDLE_MS  # not while a burst is judging the bay
            and (report_now or now_ms - last_report_ms >= HEARTBEAT_S * 1000)
        ):
            await send(1)
            last_report_ms = now_ms
            report_now = False
        wait_ms = detector.next_ms()
        await clock.sleep_ms(wait_ms)
