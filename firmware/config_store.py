# The device's persistent configuration, a JSON object in one file. A write goes to a temporary
# file that then replaces the old one with a single rename (atomic on littlefs, FAT's replace is
# not, so boards use littlefs): a power cut leaves the old config or the new, never a mix.
import json
import os


class ConfigStore:
    def __init__(self, path):
        self.path = path
        self._data = {}
        try:
            with open(path) as f:
                data = json.load(f)
        except OSError:  # first boot
            return
        except ValueError:  # not written by us (a flash fault): keep it aside, start afresh
            os.rename(path, path + ".bad")
            return
        if isinstance(data, dict):
            self._data = data

    def get(self, key, default=None):
        return self._data.get(key, default)

    def items(self):
        return self._data.items()

    def update(self, values):
        # A value of None removes the key.
        data = dict(self._data)
        for key, value in values.items():
            if value is None:
                data.pop(key, None)
            else:
                data[key] = value
        temporary = self.path + ".new"
        with open(temporary, "w") as f:
            f.write(json.dumps(data))
        os.rename(temporary, self.path)
        self._data = data
