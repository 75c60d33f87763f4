# `config-set`: checks every value against the app's settings (their defaults' types), the
# device id and its label, then saves them in one atomic write. A new id is taken at reboot.
from protocols.ids import is_valid_id


def run(device, args):
    values = args.get("values")
    if not isinstance(values, dict) or not values:
        raise ValueError("config-set needs values: a non-empty map")
    settings = device.settings
    for key, value in values.items():
        if key == "id":
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
