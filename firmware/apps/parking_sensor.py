# The parking sensor app: an in-ground magnetometer sampled at the detector's duty cycle, bay
# occupancy advertised as encrypted BTHome v2 (occupancy, battery, packet id) on every change
# (repeated) and as a heartbeat. Console commands: "calibrate" and "parking-status", cold
# commands (firmware/runtime.py) whose code is on the heap only while they run.
# Config keys: bthome_key (32 hex digits, required to advertise), parking_baseline_ut (written by
# calibrate), bthome_counter (encryption counter reservation, so it grows across reboots).
from binascii import unhexlify

from firmware.apps.parking_detector import HEARTBEAT_S, IDLE_MS, REPORT_REPEATS, Detector
from protocols.ble import bthome_encode as bthome  # the encoding half only: less heap

try:
    from micropython import const
except ImportError:

    def const(x):
        return x


REQUIRES = ("magnetometer", "radio", "battery")

_ADV_INTERVAL_MS = const(100)
_COUNTER_BLOCK = const(256)  # counters reserved in the config per write (flash wear)
_EMPTY_MV = const(3000)  # battery percent: linear from 3.0 V empty to 4.2 V full (one Li-ion cell)
_FULL_MV = const(4200)
_OCCUPANCY = const(0x23)
_BATTERY = const(0x01)


class ParkingSensor:
    # The steady loop, and the state the cold commands read and set.
    def __init__(self, hal, device):
        self.hal = hal
        self.device = device
        self.battery = hal.open("battery")
        self.radio = hal.open("radio")
        self.detector = Detector(baseline=device.config.get("parking_baseline_ut", None))
        # at boot and after calibrate: the city (and the technician) learn the bay's state at
        # once, not at the next heartbeat
        self.report_now = True
        # the energy account's counts (the readings are the detector's)
        self.elapsed_s = 0.0
        self.adverts = self.bursts = 0
        # encrypted BTHome adverts: a packet id per report (its repeats share it), an encryption
        # counter per frame that keeps growing across reboots
        self._packet_id = 0
        self._counter = self._reserved = device.config.get("bthome_counter", 0)
        key = device.config.get("bthome_key", None)
        try:
            key = unhexlify(key) if isinstance(key, str) and len(key) == 32 else None
        except ValueError:
            key = None
        self._key = key
        if key is None:
            device.log("error", "no valid bthome_key (32 hex digits) in config: not advertising")
        if self.detector.baseline is None:
            device.log("warning", "not calibrated: run calibrate with the bay empty")

    async def send(self, repeats):
        battery_mv = self.battery.read_mv()
        if self._key is None:
            return
        # battery percent: linear from empty to full
        percent = (battery_mv - _EMPTY_MV) * 100 // (_FULL_MV - _EMPTY_MV)
        percent = 0 if percent < 0 else 100 if percent > 100 else percent
        if self._counter >= self._reserved:
            self._reserved = self._counter + _COUNTER_BLOCK
            self.device.config.update({"bthome_counter": self._reserved})
        self._packet_id = (self._packet_id + 1) & 0xFF
        frame = bthome.encode(
            [(_OCCUPANCY, 1 if self.detector.occupied else 0), (_BATTERY, percent)],
            mac=self.radio.address,
            key=self._key,
            counter=self._counter,
            packet_id=self._packet_id,
        )
        self._counter += 1
        self.radio.advertise(bthome.advert(frame), _ADV_INTERVAL_MS)
        await self.hal.clock.sleep_ms(repeats * _ADV_INTERVAL_MS)
        self.radio.stop()
        self.adverts += repeats
        self.bursts += 1

    async def run(self):
        magnetometer = self.hal.open("magnetometer")
        clock = self.hal.clock
        detector = self.detector
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
            self.elapsed_s += dt_ms / 1000
            if detector.feed(dt_ms, x, y, z):
                self.device.log("info", "bay %s" % ("occupied" if detector.occupied else "vacant"))
                await self.send(REPORT_REPEATS)
                last_report_ms = now_ms
                self.report_now = False
            elif (
                detector.baseline is not None
                and detector.next_ms() == IDLE_MS  # not while a burst is judging the bay
                and (self.report_now or now_ms - last_report_ms >= HEARTBEAT_S * 1000)
            ):
                await self.send(1)
                last_report_ms = now_ms
                self.report_now = False
            wait_ms = detector.next_ms()
            await clock.sleep_ms(wait_ms)


async def main(hal, device):
    sensor = ParkingSensor(hal, device)
    device.command("calibrate", "firmware.apps.parking_calibrate", sensor)
    device.command("parking-status", "firmware.apps.parking_status", sensor)
    await sensor.run()
