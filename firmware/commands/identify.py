# `identify`: what the device says in its HELLO, and its status LED blinks so that a technician
# sees which board answered.
import asyncio


def run(device, args):
    if "status_led" in device.hal.board["aliases"]:
        asyncio.create_task(_blink(device.hal))
    return device.hello


async def _blink(hal):
    try:
        led = hal.open("status_led")
    except OSError:  # a LED the board cannot drive now (a sim board without its world)
        return
    for _ in range(5):
        led.on()
        await hal.clock.sleep_ms(150)
        led.off()
        await hal.clock.sleep_ms(150)
