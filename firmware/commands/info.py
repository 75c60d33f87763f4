# `info`: identity, uptime, boots and heap. heap_used is measured with this command loaded, as
# any cold command is while it runs: the heap a board needs is its steady loop's plus that.
import gc


def run(device, args):
    gc.collect()
    return {
        "id": device.id,
        "app": device.app,
        "fw": device.firmware,
        "board": device.hal.board["name"],
        "uptime_s": device.uptime_s(),
        "boots": device.boots,
        "heap_free": gc.mem_free(),
        "heap_used": gc.mem_alloc(),
        "heap_peak": device.heap_peak,
        "label": device.config.get("label"),
    }
