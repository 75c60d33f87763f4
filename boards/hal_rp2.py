# The HAL of RP2040 boards (rpi_pico_w): machine peripherals and aioble, plus the Li-Fi
# transmitter on a PIO state machine, which shifts chips out at the chip rate whatever the CPU
# is doing.
import asyncio

import rp2
from machine import Pin

from boards import hal_machine


@rp2.asm_pio(out_init=rp2.PIO.OUT_LOW, out_shiftdir=rp2.PIO.SHIFT_LEFT, autopull=True)
def _ook():
    out(pins, 1)  # noqa: F821  (PIO assembler) one chip per cycle, MSB first


class Light:
    def __init__(self, spec, clock):
        self._pin = Pin(spec["pin"], Pin.OUT)
        self._state_machine_id = spec["pio"] * 4
        self._max_chip_rate_hz = spec["max_chip_rate_hz"]
        self._clock = clock
        self._machine = None
        self._rate_hz = 0

    async def transmit(self, chips, chip_rate_hz):
        if not 0 < chip_rate_hz <= self._max_chip_rate_hz:
            raise ValueError("chip rate must be 1 to %d Hz" % self._max_chip_rate_hz)
        if chip_rate_hz != self._rate_hz:
            self._machine = rp2.StateMachine(
                self._state_machine_id, _ook, freq=chip_rate_hz, out_base=self._pin
            )
            self._machine.active(1)
            self._rate_hz = chip_rate_hz
        whole = len(chips) - len(chips) % 4
        words = memoryview(chips)[:whole]
        for i in range(0, whole, 4):  # the FIFO takes 32-bit words; put() blocks while full
            self._machine.put(
                words[i] << 24 | words[i + 1] << 16 | words[i + 2] << 8 | words[i + 3]
            )
            if i & 0xFF == 0:
                await asyncio.sleep_ms(0)
        for b in chips[whole:]:
            self._machine.put(b << 24)


class Hal(hal_machine.Hal):
    def _make(self, alias, spec):
        if spec["kind"] == "light":
            return Light(spec, self.clock)
        return super()._make(alias, spec)
