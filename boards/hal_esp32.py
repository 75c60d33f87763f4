# The HAL of ESP32 boards (esp32_c3): machine peripherals and aioble, as on every machine port.
from boards.hal_machine import Hal  # noqa: F401
