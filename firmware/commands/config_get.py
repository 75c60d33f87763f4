# `config-get`: every setting (the app's defaults, overlaid by what the config holds), or one.


def run(device, args):
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
