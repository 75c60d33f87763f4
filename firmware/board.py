# The board this firmware runs on: its definition (boards/<name>.json, copied to the board as
# board.json) and the HAL of its port (boards/hal_<port>.py). Apps never name pins: they ask the
# HAL for an alias ("magnetometer", "link_uart") and the definition says what that is here.
import json

try:
    from os import getenv  # the unix port: the simulator points at another definition
except ImportError:

    def getenv(name):
        return None


BOARD_FILE = "board.json"


def load():
    path = getenv("LUCIOLE_BOARD_FILE") or BOARD_FILE
    with open(path) as f:
        board = json.load(f)
    port = __import__("boards.hal_" + board["port"], None, None, ["Hal"])
    return port.Hal(board)


def missing_aliases(hal, required):
    aliases = hal.board["aliases"]
    return [alias for alias in required if alias not in aliases]
