"""`edgekit command`: sign an operator command, send it, print the device's answer.

    edgekit command /dev/ttyUSB0 valve open=false
    edgekit command emu:esp32-1 diag --json

Commands per app: docs/apps.md (every device: diag).
"""
import json

from edgekit import catalog as C
from edgekit.errors import EdgekitError
from edgekit.operate import render
from edgekit.operate.connect import add_common_options, connect


def _value(text):
    for convert in (json.loads,):
        try:
            return convert(text)
        except ValueError:
            pass
    return text


def _args(pairs):
    out = {}
    for pair in pairs:
        if "=" not in pair:
            raise EdgekitError(f"argument {pair!r}: write NAME=VALUE (e.g. open=false)")
        name, value = pair.split("=", 1)
        out[name] = _value(value)
    return out


def cmd_command(args):
    session, transport, registry, device_id = connect(args, need_operator=True)
    try:
        msg = session.request(C.COMMAND, {C.K_NAME: args.name, C.K_ARGS: _args(args.args)},
                              expect=C.COMMAND_RESULT)
        registry.touch(device_id, msg.seq)
        result = msg.payload.get(C.K_RESULT)
        if args.json:
            print(json.dumps({"device": device_id, "command": args.name, "result": result},
                             indent=2, default=render.json_default))
        else:
            print(f"{device_id}: {args.name}")
            for line in render.readable_lines(result, None if isinstance(result, dict)
                                              else "result", "  "):
                print(line)
        registry.record_event(device_id, "command", {"name": args.name})
    finally:
        transport.close()


def register(subparsers):
    c = subparsers.add_parser("command", help="send a signed operator command to a device",
                              description="Sign a command with the operator key, send it, "
                                          "print the device's answer. Commands per app: "
                                          "docs/apps.md (every device: diag).")
    add_common_options(c)
    c.add_argument("name", help="command name, e.g. valve, read, history, diag")
    c.add_argument("args", nargs="*", metavar="NAME=VALUE", help="arguments (JSON values)")
    c.set_defaults(func=cmd_command)
