# What the rp2 and esp32 HALs share: MicroPython's machine module and BLE through
# micropython-lib's aioble (installed on the board with `mpremote mip install aioble`).
import asyncio
import os
import sys
import time

import machine


class Clock:
    speed = 1.0

    def ticks_ms(self):
        return time.ticks_ms()

    async def sleep_ms(self, ms):
        await asyncio.sleep_ms(ms)


class Uart:
    def __init__(self, spec):
        self._uart = machine.UART(
            spec["id"],
            baudrate=spec["baud"],
            tx=machine.Pin(spec["tx"]),
            rx=machine.Pin(spec["rx"]),
        )
        self._reader = asyncio.StreamReader(self._uart)
        self._writer = asyncio.StreamWriter(self._uart)
        self._draining = False

    async def read(self):
        return await self._reader.read(256)

    def write(self, data):
        self._writer.write(data)
        if self._writer.out_buf and not self._draining:
            self._draining = True
            asyncio.create_task(self._drain())

    async def _drain(self):
        await self._writer.drain()
        self._draining = False


class Led:
    def __init__(self, spec):
        self._pin = machine.Pin(spec["pin"], machine.Pin.OUT)
        self._on = 0 if spec.get("active_low") else 1
        self.off()

    def on(self):
        self._pin.value(self._on)

    def off(self):
        self._pin.value(1 - self._on)


class Battery:
    def __init__(self, spec):
        self._adc = machine.ADC(machine.Pin(spec["adc_pin"]))
        self._divider = spec["divider"]

    def read_mv(self):
        return self._adc.read_u16() * 3300 * self._divider // 65535


class Radio:
    # Non-connectable advertising through aioble's shared BLE instance.
    def __init__(self):
        import aioble  # noqa: F401  (on the board only; installed with mpremote mip)
        from aioble import core

        core.ensure_active()
        self._ble = core.ble
        self.address = ":".join("%02X" % b for b in self._ble.config("mac")[1])

    def advertise(self, adv_data, interval_ms):
        self._ble.gap_advertise(interval_ms * 1000, adv_data, connectable=False)

    def stop(self):
        self._ble.gap_advertise(None)


class Hal:
    def __init__(self, board):
        self.board = board
        self.storage = "/"
        self.clock = Clock()
        self.id = "dev-" + "".join("%02x" % b for b in machine.unique_id())  # unless configured
        self._drivers = {}

    async def start(self):
        pass

    def storage_free(self):
        # bytes the filesystem can still take (littlefs: whole blocks)
        stat = os.statvfs(self.storage)
        return stat[1] * stat[4]

    def open(self, alias):
        driver = self._drivers.get(alias)
        if driver is None:
            driver = self._drivers[alias] = self._make(alias, self.board["aliases"][alias])
        return driver

    def _make(self, alias, spec):
        kind = spec["kind"]
        if kind == "uart":
            return Uart(spec)
        if kind == "led":
            return Led(spec)
        if kind == "battery":
            return Battery(spec)
        if kind == "ble":
            return Radio()
        if kind == "magnetometer":
            from boards.lis3mdl import Lis3mdl

            bus = self.board["aliases"][spec["bus"]]
            i2c = machine.I2C(
                bus["id"],
                sda=machine.Pin(bus["sda"]),
                scl=machine.Pin(bus["scl"]),
                freq=bus["freq_hz"],
            )
            return Lis3mdl(i2c, spec["address"], self.clock.sleep_ms)
        raise OSError("no driver for %s (%s) on %s" % (alias, kind, self.board["name"]))

    def watchdog(self, timeout_ms):
        return machine.WDT(timeout=timeout_ms)

    def log(self, level, message):
        sys.stderr.write("%d %s %s\n" % (time.ticks_ms(), level, message))

    def reset(self):
        machine.reset()
