"""The `luciole` command. Each package contributes subcommands through the `luciole.commands`
entry-point group; only the one being run is imported, so the gateway never loads the simulators.

An entry point names a function `register(subparsers) -> None` that adds one subparser and sets
`handler` on it: `handler(args) -> int`, the exit status.
"""

import argparse
import os
import sys
from importlib.metadata import entry_points, version


class UsageError(Exception):
    """Bad input from the command line or a file: reported as one line, exit status 2."""


class OneLineParser(argparse.ArgumentParser):
    """Bad arguments are reported like bad input: one line, exit status 2. (argparse's own
    error() prints the usage first, and would leave unknown arguments to the top-level parser.)"""

    def error(self, message):
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")

    def parse_known_args(self, args=None, namespace=None):
        namespace, extras = super().parse_known_args(args, namespace)
        if extras:
            self.error("unrecognized arguments: " + " ".join(extras))
        return namespace, extras


def _commands():
    return {ep.name: ep for ep in entry_points(group="luciole.commands")}


def build_parser(only=None):
    parser = OneLineParser(
        prog="luciole",
        description="Luciole: edge software for a city's Li-Fi luminaires, parking sensors "
        "and BLE beacons, bridged to the city's MQTT broker.",
    )
    parser.add_argument("--version", action="version", version="luciole " + version("luciole"))
    subparsers = parser.add_subparsers(
        title="commands", metavar="COMMAND", parser_class=OneLineParser
    )
    for name, ep in sorted(_commands().items()):
        if only is None or name == only:
            ep.load()(subparsers)
    return parser


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    commands = _commands()
    chosen = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(chosen if chosen in commands else None)
    args = parser.parse_args(argv)
    if not hasattr(args, "handler"):
        parser.print_help()
        return 2
    try:
        return args.handler(args)
    except UsageError as e:
        print(f"luciole {chosen}: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `luciole ... | head`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
