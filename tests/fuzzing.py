"""How hard hypothesis tries. Decoders get the profile in conftest.py: at least 10,000 random
and mutated inputs each. Round-trip and oracle properties, which run encoders and slower
third-party decoders, check structure rather than hunt for crashes: fewer examples do."""

PROPERTY_EXAMPLES = 1_000
