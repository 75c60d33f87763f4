# `reboot`: the board restarts once its answer has left.
import asyncio


def run(device, args):
    asyncio.create_task(_reboot_soon(device.hal))
    return {"rebooting": True}


async def _reboot_soon(hal):
    await asyncio.sleep_ms(100)  # the RESPONSE leaves first
    hal.reset()
