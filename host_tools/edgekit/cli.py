"""`edgekit` command line: a table of command groups, each living in its own module.

Each module in COMMANDS exposes `register(subparsers)`, adding its parser(s) with
`set_defaults(func=handler)`; a handler returns an exit code (or None for 0) and raises
EdgekitError for anything the user can fix. Modules are imported only when present so
a missing optional piece never breaks the rest of the CLI.
"""
import argparse
import difflib
import importlib
import json
import os
import re
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
    "edgekit.ports_cli",
    "edgekit.doctor",
    "edgekit.completion",
    "edgekit.view.server",
    "edgekit.vouchers.cli",
    "edgekit.protocol.cli",
]


class Parser(argparse.ArgumentParser):
    """argparse, plus "did you mean" for a mistyped command or action (subparsers are made
    of this class too)."""

    def error(self, message):
        m = re.search(r"invalid choice: '([^']*)' \(choose from (.*)\)", message)
        if m:
            choices = re.findall(r"'([^']*)'", m.group(2))
            close = difflib.get_close_matches(m.group(1), choices, n=1, cutoff=0.6)
            if close:
                message += f"; did you mean '{close[0]}'?"
        super().error(message)


# A stable name per error family, for scripts reading `--json` errors (stderr, one object).
def error_object(exc):
    out = {"error": getattr(exc, "kind", "error"), "message": str(exc),
           "exit_status": exc.exit_code}
    code = getattr(exc, "code", None)
    if code is not None:
        out["device_code"] = code
    return out


def _quiet_stdout():
    # The reader went away (`edgekit devices list | head`): say nothing more, and keep the
    # interpreter from complaining when it flushes stdout at exit.
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def build_parser():
    parser = Parser(
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
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        if not getattr(args, "func", None):
            parser.print_help()
            return 2
        try:
            return args.func(args) or 0
        except EdgekitError as exc:
            if getattr(args, "json", False):
                print(json.dumps(error_object(exc)), file=sys.stderr)
            else:
                print(f"edgekit: error: {exc}", file=sys.stderr)
            return exc.exit_code
    except KeyboardInterrupt:
        print("edgekit: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        _quiet_stdout()
        return 141              # as a shell reports a command ended by SIGPIPE


if __name__ == "__main__":
    sys.exit(main())
