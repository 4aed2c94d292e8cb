"""`edgekit monitor`: watch a device's verified frames; with --ack, be its gateway (store,
then acknowledge, operate/forward.py).

    edgekit monitor /dev/ttyUSB0 [--ack] [--duration 60] [--json]

Every frame is verified with the device key the registry holds for that device (found from
the certificate in its CAPS, which must be signed by this fleet's root).
"""
import json
import sys
import time

from edgekit import catalog as C
from edgekit.errors import LinkError
from edgekit.operate import forward, render
from edgekit.operate.connect import add_common_options, connect, reconnect
from edgekit.registry.db import now_iso


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


def cmd_monitor(args):
    end = time.monotonic() + args.duration if args.duration else None
    link = connect(args, need_operator=True)   # a first connection that fails is an error
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
            link = reconnect(args, end)
            if link is not None:
                print(f"{device_id}: link back, catching up", file=sys.stderr, flush=True)
    except KeyboardInterrupt:
        pass
    return 0


def register(subparsers):
    p = subparsers.add_parser("monitor", help="watch a device's signed events and telemetry",
                              description="Print every verified frame a device pushes "
                                          "(alarms, reports); with --ack act as the gateway "
                                          "and acknowledge telemetry.")
    add_common_options(p)
    p.add_argument("--ack", action="store_true",
                   help="acknowledge telemetry and events once shown (the gateway's job)")
    p.add_argument("--duration", type=float, default=0, help="stop after SECONDS (0: never)")
    p.set_defaults(func=cmd_monitor)
