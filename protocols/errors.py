# The one error type every Luciole decoder raises on bad input (truncated, oversized, bad CRC,
# unknown version, wrong key, nonsense). Callers catch DecodeError; anything else escaping a
# decoder is a bug.


class DecodeError(ValueError):
    pass
