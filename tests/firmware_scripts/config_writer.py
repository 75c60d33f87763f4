# Under MicroPython: prints the config the firmware's store finds, then rewrites it as fast as it
# can (a growing counter and a payload made from it) until it is killed.
import sys

from firmware.config_store import ConfigStore

store = ConfigStore(sys.argv[1] + "/config.json")
n = store.get("n", 0)
print("found", n, store.get("payload", ""))
while True:
    n += 1
    store.update({"n": n, "payload": str(n) * (n % 97 + 1)})
