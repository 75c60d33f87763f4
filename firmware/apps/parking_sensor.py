# The parking sensor app: an in-ground magnetometer sampled at the detector's duty cycle, bay
# occupancy advertised as encrypted BTHome v2 (occupancy, battery, packet id) on every change
# (repeated) and as a heartbeat. Console commands: "calibrate" and "parking-status".
# Config keys: bthome_key (32 hex digits, required to advertise), parking_baseline_ut (written by
# calibrate), bthome_counter (encryption counter reservation, so it grows across reboots).
from binascii import unhexlify

from firmware.apps.energy import Energy
from firmware.apps.parking_detector import (
    HEARTBEAT_S,
    IDLE_MS,
    REPORT_REPEATS,
    CalibrationError,
    Detector,
)
from protocols.ble import adv_build as adv  # the building half only: less heap
from protocols.ble import bthome_encode as bthome  # the encoding half only: less heap

REQUIRES = ("magnetometer", "radio", "battery")

_ADV_INTERVAL_MS = 100
_COUNTER_BLOCK = 256  # counters reserved in the config per write (flash wear)
_CELL_MAH = 2600
_EMPTY_MV = 3000  # battery percent: linear from 3.0 V empty to 4.2 V full (one Li-ion cell)
_FULL_MV = 4200
_OCCUPANCY = 0x23
_BATTERY = 0x01


async def main(hal, device):
    magnetometer = hal.open("magnetometer")
    radio = hal.open("radio")
    battery = hal.open("battery")
    clock = hal.clock
    detector = Detector(baseline=device.config.get("parking_baseline_ut", None))
    energy = Energy(hal.board["power_ua"])
    sender = _Sender(radio, device, energy)
    if sender.key is None:
        device.log("error", "no valid bthome_key (32 hex digits) in config: not advertising")
    if detector.baseline is None:
        device.log("warning", "not calibrated: run calibrate with the bay empty")

    # at boot and after calibrate: the city (and the technician) learn the bay's state at once,
    # not at the next heartbeat
    report_now = [True]

    def calibrate(args):
        try:
            baseline = detector.calibrate(bool(args.get("force", False)))
        except CalibrationError as e:
            raise ValueError(str(e)) from None
        device.config.update({"parking_baseline_ut": list(baseline)})
        report_now[0] = True
        device.log("info", "calibrated: baseline %s uT" % (_rounded(baseline),))
        return {"baseline_ut": _rounded(baseline)}

    def status(args):
        out = detector.status()
        out["battery_mv"] = battery.read_mv()
        out["energy"] = energy.report(_CELL_MAH)
        out["estimated_battery_years"] = out["energy"].pop("battery_years")
        return out

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
        energy.elapsed(dt_ms / 1000)
        energy.sample()
        if detector.feed(dt_ms, x, y, z):
            device.log("info", "bay %s" % ("occupied" if detector.occupied else "vacant"))
            await sender.send(clock, detector.occupied, battery.read_mv(), REPORT_REPEATS)
            last_report_ms = now_ms
            report_now[0] = False
        elif (
            detector.baseline is not None
            and detector.next_ms() == IDLE_MS  # not while a burst is judging the bay
            and (report_now[0] or now_ms - last_report_ms >= HEARTBEAT_S * 1000)
        ):
            await sender.send(clock, detector.occupied, battery.read_mv(), 1)
            last_report_ms = now_ms
            report_now[0] = False
        wait_ms = detector.next_ms()
        await clock.sleep_ms(wait_ms)


class _Sender:
    """Encrypted BTHome adverts: a packet id per report (its repeats share it), an encryption
    counter per frame that keeps growing across reboots."""

    def __init__(self, radio, device, energy):
        self.radio = radio
        self.device = device
        self.energy = energy
        self.mac = radio.address
        self.key = _key(device.config.get("bthome_key", None))
        self.packet_id = 0
        self.counter = device.config.get("bthome_counter", 0)
        self.reserved = self.counter

    async def send(self, clock, occupied, battery_mv, repeats):
        if self.key is None:
            return
        if self.counter >= self.reserved:
            self.reserved = self.counter + _COUNTER_BLOCK
            self.device.config.update({"bthome_counter": self.reserved})
        self.packet_id = (self.packet_id + 1) & 0xFF
        frame = bthome.encode(
            [(_OCCUPANCY, 1 if occupied else 0), (_BATTERY, _percent(battery_mv))],
            mac=self.mac,
            key=self.key,
            counter=self.counter,
            packet_id=self.packet_id,
        )
        self.counter += 1
        self.radio.advertise(adv.build(service_data={bthome.UUID16: frame}), _ADV_INTERVAL_MS)
        await clock.sleep_ms(repeats * _ADV_INTERVAL_MS)
        self.radio.stop()
        self.energy.adverts(repeats)


def _key(text):
    if not isinstance(text, str) or len(text) != 32:
        return None
    try:
        return unhexlify(text)
    except ValueError:
        return None


def _percent(battery_mv):
    pct = (battery_mv - _EMPTY_MV) * 100 // (_FULL_MV - _EMPTY_MV)
    return 0 if pct < 0 else 100 if pct > 100 else pct


def _rounded(values):
    return [round(v, 2) for v in values]
