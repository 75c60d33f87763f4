# The provisioning commands every board answers on its console (firmware/runtime.py): a cold
# module, imported for each of them and dropped after, so that their code is on the heap only
# while one runs. Each is the function of the command's name ("-" as "_"): (device, args) ->
# the result, or ValueError("reason") for an error reply.
import asyncio
import gc


def identify(device, args):
    # what the device says in its HELLO; its status LED blinks, so that a technician sees which
    # board answered
    if "status_led" in device.hal.board["aliases"]:
        asyncio.create_task(_blink(device.hal))
    return device.hello


def info(device, args):
    # heap_used is measured with this module loaded, as a cold command's is while it runs: the
    # heap a board needs is its steady loop's plus that
    gc.collect()
    return {
        "id": device.id,
        "app": device.hello["role"],
        "fw": device.hello["fw"],
        "board": device.hal.board["name"],
        "uptime_s": device.uptime_s(),
        "boots": device.boots,
        "heap_free": gc.mem_free(),
        "heap_used": gc.mem_alloc(),
        "heap_peak": device.heap_peak,
        "label": device.config.get("label"),
    }


def config_get(device, args):
    # every setting (the app's defaults, overlaid by what the config holds), or one
    settings = device.settings
    key = args.get("key")
    if key is None:
        values = {}
        for k in settings:
            values[k] = settings[k]
        for k, v in device.config.items():
            values[k] = v
        return values
    if key not in settings and device.config.get(key) is None:
        raise ValueError("unknown config key %r" % (key,))
    return {key: device.config.get(key, settings.get(key))}


def config_set(device, args):
    # checks every value against the app's settings (their defaults' types), the device id and
    # its label, then saves them in one atomic write; a new id is taken at reboot
    values = args.get("values")
    if not isinstance(values, dict) or not values:
        raise ValueError("config-set needs values: a non-empty map")
    settings = device.settings
    for key, value in values.items():
        if key == "id":
            from protocols.ids import is_valid_id  # only then: it is dropped with this module

            if not is_valid_id(value):
                raise ValueError("id must match [a-z0-9][a-z0-9-]{0,63}, got %r" % (value,))
        elif key == "label":
            if not isinstance(value, str) or len(value) > 64:
                raise ValueError("label must be text of at most 64 characters")
        elif key in settings:
            default = settings[key]
            number = isinstance(default, (int, float)) and not isinstance(default, bool)
            if isinstance(value, bool) != isinstance(default, bool) or not (
                isinstance(value, type(default)) or (number and isinstance(value, (int, float)))
            ):
                raise ValueError("%s must be %s, got %r" % (key, type(default).__name__, value))
        else:
            known = ", ".join(sorted(["id", "label"] + list(settings)))
            raise ValueError("unknown config key %r; known: %s" % (key, known))
    device.config.update(values)
    return {"saved": sorted(values), "reboot_needed": "id" in values}


def reboot(device, args):
    # the board restarts once its answer has left
    asyncio.create_task(_reboot_soon(device.hal))
    return {"rebooting": True}


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


async def _reboot_soon(hal):
    await asyncio.sleep_ms(100)  # the RESPONSE leaves first
    hal.reset()
