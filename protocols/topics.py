# The city contract's MQTT topics (DESIGN.md section 4): build them, parse them, subscribe to them.
#
#   topics = Topics("issy")
#   topics.build("telemetry", "ps-0042")   -> "luciole/v1/issy/devices/ps-0042/telemetry"
#   topics.parse(that)                     -> ("telemetry", ["ps-0042"])
#   topics.filter("command")               -> "luciole/v1/issy/cmd/+/+"
#
# Every id (site, gateway, device, spot, exhibit, command, ...) matches [a-z0-9][a-z0-9-]{0,63}.
from .errors import DecodeError
from .ids import is_valid_id

DEFAULT_PREFIX = "luciole/v1"

# name -> levels after the prefix; "+" stands for one id
PATTERNS = {
    "gateway_status": "gateways/+/status",
    "device_status": "devices/+/status",
    "telemetry": "devices/+/telemetry",
    "events": "devices/+/events",
    "parking_spot": "parking/spots/+",
    "parking_site": "parking/sites/+",
    "exhibit_content": "museum/exhibits/+/content",
    "exhibit_object": "museum/exhibits/+/objects/+",
    "exhibit_broadcast": "museum/exhibits/+/broadcast",
    "beacon": "museum/beacons/+",
    "zone_presence": "museum/zones/+/presence",
    "command": "cmd/+/+",
}


def check_id(value, what="id"):
    if not is_valid_id(value):
        raise DecodeError("%s %r must match [a-z0-9][a-z0-9-]{0,63}" % (what, value))
    return value


class Topics:
    def __init__(self, site, prefix=DEFAULT_PREFIX):
        check_id(site, "site")
        for level in prefix.split("/"):
            if not level or "+" in level or "#" in level:
                raise DecodeError("topic prefix %r has an empty or wildcard level" % prefix)
        self.root = prefix + "/" + site
        self._levels = len(self.root.split("/"))

    def build(self, name, *ids):
        pattern = PATTERNS[name].split("/")
        if len(ids) != pattern.count("+"):
            raise TypeError("topic %s takes %d ids" % (name, pattern.count("+")))
        ids = list(ids)
        levels = [self.root]
        for level in pattern:
            levels.append(check_id(ids.pop(0)) if level == "+" else level)
        return "/".join(levels)

    def filter(self, name):
        return self.root + "/" + PATTERNS[name]

    def parse(self, topic):
        """(name, [ids]) for a topic of this site; DecodeError for anything else."""
        levels = topic.split("/")
        if "/".join(levels[: self._levels]) != self.root:
            raise DecodeError("topic %r is not under %s" % (topic, self.root))
        levels = levels[self._levels :]
        for name, pattern in PATTERNS.items():
            pattern = pattern.split("/")
            if len(pattern) != len(levels):
                continue
            ids = []
            for want, level in zip(pattern, levels):
                if want == "+":
                    if not is_valid_id(level):
                        break
                    ids.append(level)
                elif want != level:
                    break
            else:
                return name, ids
        raise DecodeError("topic %r is not in the city contract" % topic)
