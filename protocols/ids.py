# What an id may be (DESIGN.md section 4): every id in the city's topics (site, gateway, device,
# spot, exhibit, command, ...) matches [a-z0-9][a-z0-9-]{0,63}. Apart from topics.py, which
# builds the topics around ids: a board that checks a new device id imports only this.

_ID_FIRST = "abcdefghijklmnopqrstuvwxyz0123456789"
_ID_CHARS = _ID_FIRST + "-"


def is_valid_id(value):
    if not isinstance(value, str) or not 0 < len(value) <= 64 or value[0] not in _ID_FIRST:
        return False
    for char in value:
        if char not in _ID_CHARS:
            return False
    return True
