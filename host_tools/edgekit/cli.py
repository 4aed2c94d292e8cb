"""`edgekit` command line: a table of command groups, each living in its own module.

Each module in COMMANDS exposes `register(subparsers)`, adding its parser(s) with
`set_defaults(func=handler)`; a handler returns an exit code (or None for 0) and raises
EdgekitError for anything the user can fix. Modules are imported only when present so
a missing optional piece never breaks the rest of the CLI.
"""
import argparse
import importlib
import sys

from edgekit import __version__
from edgekit.errors import EdgekitError

COMMANDS = [
    "edgekit.keys.cli",
    "edgekit.registry.cli",
    "edgekit.provision.cli",
    "edgekit.emu.cli",
    "edgekit.ota.cli",
    "edgekit.flash.cli",
    "edgekit.frozen.cli",
    "edgekit.operate.cli",
    "edgekit.fleet.cli",
    "edgekit.maintenance_cli",
    "edgekit.vouchers.cli",
    "edgekit.protocol.cli",
]


def build_parser():
    parser = argparse.ArgumentParser(
        prog="edgekit",
        description="Provision, update, monitor and emulate edgekit devices.")
    parser.add_argument("--version", action="version", version=f"edgekit {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name and name.startswith(exc.name):
                continue  # that command group is not built yet
            raise
        module.register(sub)
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return args.func(args) or 0
    except EdgekitError as exc:
        print(f"edgekit: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("edgekit: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
