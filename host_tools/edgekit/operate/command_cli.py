"""`edgekit command`: sign an operator command, send it, print the device's answer.

    edgekit command /dev/ttyUSB0 valve open=false
    edgekit command emu:esp32-1 diag --json

Commands per app: docs/apps.md (every device: diag).
"""
import json

from edgekit import catalog as C
from edgekit.errors import EdgekitError
from edgekit.fleet.cli_options import add_via_fleet
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


def _print(args, device_id, result):
    if args.json:
        print(json.dumps({"device": device_id, "command": args.name, "result": result},
                         indent=2, default=render.json_default))
    else:
        print(f"{device_id}: {args.name}")
        for line in render.readable_lines(result, None if isinstance(result, dict)
                                          else "result", "  "):
            print(line)


def cmd_via_fleet(args):
    """Through the broker (docs/fleet.md): queued for the device, answered when it wakes."""
    from edgekit.fleet import command as fleet_command
    from edgekit.fleet.service import parse_url
    from edgekit.keys.store import KeyStore, edgekit_home
    from edgekit.provision.cli import _passphrase
    from edgekit.registry.db import Registry
    broker = parse_url(args.broker, args.ca)
    host, port = broker
    store = KeyStore(args.keys or edgekit_home() / "keys").require()
    signer = store.signer(C.ROLE_OPERATOR, _passphrase())
    device_id = args.port
    with Registry(args.registry) as registry:
        msg = fleet_command.send(registry, device_id, args.name, _args(args.args), signer,
                                 lambda: store.next_seq(C.ROLE_OPERATOR), host, port,
                                 wait_s=args.wait, broker=broker)
        if msg is None:
            state = {"device": device_id, "command": args.name, "queued": True}
            if args.json:
                print(json.dumps(state))
            else:
                print(f"{device_id}: {args.name} queued on the broker; the device runs it when "
                      "it next connects (its answer goes to the fleet service)")
            registry.record_event(device_id, "command", {"name": args.name, "via": "fleet",
                                                         "queued": True})
            return 0
        _print(args, device_id, msg.payload.get(C.K_RESULT))
        registry.record_event(device_id, "command", {"name": args.name, "via": "fleet"})
    return 0


def cmd_command(args):
    if args.via == "fleet":
        return cmd_via_fleet(args)
    session, transport, registry, device_id = connect(args, need_operator=True)
    try:
        msg = session.request(C.COMMAND, {C.K_NAME: args.name, C.K_ARGS: _args(args.args)},
                              expect=C.COMMAND_RESULT)
        registry.touch(device_id, msg.seq)
        _print(args, device_id, msg.payload.get(C.K_RESULT))
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
    add_via_fleet(c, "fleet: PORT is a device id, the command goes through the MQTT broker "
                     "and waits there for the device (docs/fleet.md)")
    c.add_argument("--wait", type=float, default=0,
                   help="with --via fleet: seconds to wait for the answer (0: queue and return)")
    c.set_defaults(func=cmd_command)
