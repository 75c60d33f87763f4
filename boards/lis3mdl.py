# ST LIS3MDL 3-axis magnetometer over I2C (datasheet DocID024204): +/-4 gauss full scale,
# single-measurement mode so that it draws ~1 uA between reads (the parking sensor's duty cycle).
import struct

_CTRL_REG1 = 0x20
_CTRL_REG2 = 0x21
_CTRL_REG3 = 0x22
_CTRL_REG4 = 0x23
_STATUS = 0x27
_OUT_X_L = 0x28
_AUTO_INCREMENT = 0x80
_LSB_PER_UT = 68.42  # 6842 LSB/gauss at +/-4 gauss; 1 gauss = 100 uT


class Lis3mdl:
    def __init__(self, i2c, address, sleep_ms):
        self._i2c = i2c
        self._address = address
        self._sleep_ms = sleep_ms
        self._write(_CTRL_REG1, 0x7C)  # X/Y ultra-high-performance, temperature off
        self._write(_CTRL_REG2, 0x00)  # +/-4 gauss
        self._write(_CTRL_REG4, 0x0C)  # Z ultra-high-performance
        self._write(_CTRL_REG3, 0x03)  # power-down until a read

    def power(self, on):
        if not on:
            self._write(_CTRL_REG3, 0x03)

    async def read(self):
        self._write(_CTRL_REG3, 0x01)  # one measurement, then back to idle by itself
        while not self._i2c.readfrom_mem(self._address, _STATUS, 1)[0] & 0x08:
            await self._sleep_ms(2)
        raw = self._i2c.readfrom_mem(self._address, _OUT_X_L | _AUTO_INCREMENT, 6)
        x, y, z = struct.unpack("<hhh", raw)
        return x / _LSB_PER_UT, y / _LSB_PER_UT, z / _LSB_PER_UT

    def _write(self, register, value):
        self._i2c.writeto_mem(self._address, register, bytes((value,)))
