"""Fuzzing, shared: how hard hypothesis tries, and how inputs are damaged.

Decoders get the profile in conftest.py: at least 10,000 random and mutated inputs each.
Round-trip and oracle properties, which run encoders and slower third-party decoders, check
structure rather than hunt for crashes: fewer examples do."""

PROPERTY_EXAMPLES = 1_000


def damage(rng, data: bytes) -> bytes:
    """One to four flips, insertions, deletions or truncations, drawn from rng (random.Random)."""
    data = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        at = rng.randint(0, len(data))
        action = rng.randrange(4)
        if action == 0 and at < len(data):
            data[at] ^= 1 << rng.randrange(8)
        elif action == 1:
            data[at:at] = rng.randbytes(rng.randint(1, 3))
        elif action == 2:
            del data[at : at + rng.randint(1, 3)]
        else:
            del data[at:]
    return bytes(data)
