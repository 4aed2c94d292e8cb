"""`edgekit monitor` and `edgekit command`: watch a device and send it signed commands.

    edgekit monitor /dev/ttyUSB0 [--ack] [--duration 60] [--json]
    edgekit command /dev/ttyUSB0 valve open=false
    edgekit command emu:esp32-1 diag --json

Every frame is verified with the device key the registry holds for that device (found from
the certificate in its CAPS, which must be signed by this fleet's root); commands are signed
with the operator key.
"""
import json
import sys
import time

from edgekit import catalog as C
from edgekit.errors import EdgekitError, LinkError
from edgekit.keys.deliver import LazySigner, catch_up
from edgekit.keys.store import KeyStore, edgekit_home
from edgekit.monitor import forward, render
from edgekit.protocol import messages
from edgekit.protocol.clock import ensure as ensure_clock
from edgekit.protocol.session import Session
from edgekit.provision import flow
from edgekit.provision.cli import _passphrase
from edgekit.registry.db import Registry, now_iso
from edgekit.transport import SerialTransport


def _connect(args, need_operator):
    store = KeyStore(args.keys or edgekit_home() / "keys").require()
    fleet_pub = store.anchors()["anchors"][C.ROLE_FLEET][0]
    transport = SerialTransport(args.port).open()
    session = Session(transport, timeout=args.timeout)
    caps = session.hello()
    if caps.payload.get(C.K_STATE) == "factory":
        transport.close()
        raise EdgekitError("the device is in factory state: provision it first")
    fields = flow.check_certificate(caps.payload[C.K_CERT], fleet_pub)
    registry = Registry(args.registry)
    known = registry.get(fields[C.K_DEVICE_ID])
    if known is None or bytes(known["public_key"]) != fields[C.K_PUB]:
        transport.close()
        raise EdgekitError(f"device {fields[C.K_DEVICE_ID]} is not in this registry with that "
                           "key: provision it with this fleet, or use its registry (--registry)")
    ring = messages.Keyring()
    ring.add(fields[C.K_PUB], C.ROLE_DEVICE)
    session.device_keys = ring
    # Before any operator-signed frame: a device behind a key rotation refuses the new key.
    try:
        catch_up(session, messages.open_body(caps.body, ring).payload, store,
                 fleet_signer=LazySigner(store, _passphrase), registry=registry)
    except BaseException:
        transport.close()
        raise
    if need_operator:
        # Kept on args: a monitor that reconnects does not ask for the passphrase again.
        session.signer = getattr(args, "operator_signer", None) or \
            store.signer(C.ROLE_OPERATOR, _passphrase())
        args.operator_signer = session.signer
        session.next_seq = lambda: store.next_seq(C.ROLE_OPERATOR)
        try:
            ensure_clock(session, registry, fields[C.K_DEVICE_ID])  # SPEC 8.4: off or unset
        except BaseException:
            transport.close()
            raise
    return session, transport, registry, fields[C.K_DEVICE_ID]


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
    session, transport, registry, device_id = _connect(args, need_operator=True)
    try:
        msg = session.request(C.COMMAND, {C.K_NAME: args.name, C.K_ARGS: _args(args.args)},
                              expect=C.COMMAND_RESULT)
        registry.touch(device_id, msg.seq)
        result = msg.payload.get(C.K_RESULT)
        if args.json:
            print(json.dumps({"device": device_id, "command": args.name, "result": result},
                             indent=2, default=render.json_default))
        else:
            print(f"{device_id}: {args.name} -> {result}")
        registry.record_event(device_id, "command", {"name": args.name})
    finally:
        transport.close()


def _show(args, device_id):
    """How monitor prints what was just stored: one line per record, or per message (--json)."""
    def show(msg, rows, events):
        if args.json:
            print(json.dumps(render.as_json(device_id, msg), default=render.json_default),
                  flush=True)
            return
        for row in rows:
            print(render.record_line(row))
        for row in events:
            print(render.event_line(row))
        if not rows and not events:
            print(f"{now_iso()}  {device_id}  {C.type_name(msg.type)}")
        sys.stdout.flush()
    return show


def _acked(device_id):
    def acked(journal, upto, left):
        print(f"{device_id}: stored and acknowledged {journal} up to #{upto}; "
              f"{left} left on the device", file=sys.stderr, flush=True)
    return acked


def _reconnect(args, end):
    """Open the link again (the cable may be out for a while); None if `end` passes first."""
    while end is None or time.monotonic() < end:
        try:
            return _connect(args, need_operator=True)
        except LinkError:
            time.sleep(1.0)
    return None


def cmd_monitor(args):
    end = time.monotonic() + args.duration if args.duration else None
    link = _connect(args, need_operator=True)   # a first connection that fails is an error
    shown = set()           # (journal, seq) printed: a batch sent again is printed once
    if not args.json:
        print(f"monitoring {link[3]} (Ctrl-C to stop)", file=sys.stderr)
    try:
        while link is not None:
            session, transport, registry, device_id = link
            try:
                gateway = forward.Forwarder(session, registry, device_id, args.ack,
                                            _show(args, device_id), _acked(device_id))
                gateway.shown = shown
                gateway.catch_up()
                while end is None or time.monotonic() < end:
                    msg = session.events.popleft() if session.events else \
                        session.receive(timeout=1.0)
                    if msg is not None:
                        gateway.on_message(msg)
                return 0
            except LinkError as exc:
                print(f"{device_id}: link lost ({exc}), reconnecting", file=sys.stderr,
                      flush=True)
            finally:
                transport.close()
                registry.close()
            link = _reconnect(args, end)
            if link is not None:
                print(f"{device_id}: link back, catching up", file=sys.stderr, flush=True)
    except KeyboardInterrupt:
        pass
    return 0


def _common(p):
    p.add_argument("port", help="serial port, socket://HOST:PORT or emu:ID")
    p.add_argument("--keys", metavar="DIR", help="key directory (default $EDGEKIT_HOME/keys)")
    p.add_argument("--registry", metavar="FILE", help="registry database")
    p.add_argument("--timeout", type=float, default=5.0, help="seconds per answer")
    p.add_argument("--json", action="store_true", help="JSON output")


def register(subparsers):
    p = subparsers.add_parser("monitor", help="watch a device's signed events and telemetry",
                              description="Print every verified frame a device pushes "
                                          "(alarms, reports); with --ack act as the gateway "
                                          "and acknowledge telemetry.")
    _common(p)
    p.add_argument("--ack", action="store_true",
                   help="acknowledge telemetry and events once shown (the gateway's job)")
    p.add_argument("--duration", type=float, default=0, help="stop after SECONDS (0: never)")
    p.set_defaults(func=cmd_monitor)
    c = subparsers.add_parser("command", help="send a signed operator command to a device",
                              description="Sign a command with the operator key, send it, "
                                          "print the device's answer. Commands per app: "
                                          "docs/apps.md (every device: diag).")
    _common(c)
    c.add_argument("name", help="command name, e.g. valve, read, history, diag")
    c.add_argument("args", nargs="*", metavar="NAME=VALUE", help="arguments (JSON values)")
    c.set_defaults(func=cmd_command)
