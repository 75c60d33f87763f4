# What an id may be (DESIGN.md section 4): every id in the city's topics (site, gateway, device,
# spot, exhibit, command, ...) matches [a-z0-9][a-z0-9-]{0,63}. Apart from topics.py, which
# builds the topics around ids: a board that checks a new device id imports only this.


def is_valid_id(value):
    if not isinstance(value, str) or not 0 < len(value) <= 64:
        return False
    # byte by byte: MicroPython keeps every one-character string it makes as a name, for good
    for i, byte in enumerate(value.encode()):
        if not (0x61 <= byte <= 0x7A or 0x30 <= byte <= 0x39 or (byte == 0x2D and i > 0)):
            return False
    return True
