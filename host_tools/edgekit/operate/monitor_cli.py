"""`edgekit monitor`: watch a device's verified frames; with --ack, be its gateway (store,
then acknowledge, operate/forward.py).

    edgekit monitor /dev/ttyUSB0 [--ack] [--duration 60] [--json]
    edgekit monitor --via fleet DEVICE_ID [--since T] [--follow] [--json]   (fleet/monitor.py)

Every frame is verified with the device key the registry holds for that device (found from
the certificate in its CAPS, which must be signed by this fleet's root).
"""
import json
import sys
import time

from edgekit import catalog as C
from edgekit.errors import EdgekitError, LinkError
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


def cmd_via_fleet(args):
    """What the fleet service stored for a device on the network (fleet/monitor.py)."""
    from edgekit.fleet import monitor as fleet_monitor
    from edgekit.registry.backends import open_registry
    from edgekit.registry.telemetry_cli import parse_since
    if args.ack:
        raise EdgekitError("--ack is the gateway's job on a port; with --via fleet the fleet "
                           "service acknowledges (edgekit fleet serve): drop --ack")
    if args.interval <= 0:
        raise EdgekitError("--interval must be a number of seconds above 0")
    since = parse_since(args.since) if args.since is not None else None
    device_id = args.port
    with open_registry(args.registry) as registry:     # a SQLite file or the PostgreSQL store
        if args.follow and not args.json:
            print(f"following what the fleet service stores for {device_id} in "
                  f"{registry.path} (Ctrl-C to stop)", file=sys.stderr, flush=True)
        try:
            shown = fleet_monitor.run(registry, device_id,
                                      fleet_monitor.printer(device_id, args.json), since=since,
                                      follow=args.follow, interval=args.interval,
                                      duration=args.duration)
        except KeyboardInterrupt:
            return 0
    if not shown and not args.json:
        print(f"nothing stored for {device_id} yet: `edgekit fleet serve` stores what it "
              "publishes", file=sys.stderr)
    return 0


def cmd_monitor(args):
    if args.via == "fleet":
        if args.drain:
            raise EdgekitError("--drain is for a port: with --via fleet the monitor prints "
                               "what the service stored and stops (without --follow)")
        return cmd_via_fleet(args)
    if args.since is not None or args.follow:
        raise EdgekitError("--since and --follow are for --via fleet (a port is followed "
                           "live already)")
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
                if args.drain:
                    return 0        # everything journaled is stored (and acknowledged)
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
            if link is None and args.drain:
                raise LinkError(f"{device_id}: not drained: the link did not come back "
                                f"within --duration {args.duration:g} s (what was stored "
                                "stays stored; run it again)")
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
    p.add_argument("--drain", action="store_true",
                   help="stop once everything the device journaled is stored (acknowledged "
                        "with --ack): a scheduled gateway or a technician's collect-and-go; "
                        "a link lost meanwhile is reopened until --duration ends (exit 3)")
    p.add_argument("--via", choices=("port", "fleet"), default="port",
                   help="fleet: PORT is a device id; print what the fleet service stored for "
                        "it (its registry), never acknowledging anything (docs/fleet.md)")
    p.add_argument("--since", metavar="ISO|UNIX",
                   help="with --via fleet: only records from this time on")
    p.add_argument("--follow", action="store_true",
                   help="with --via fleet: keep printing records as the service stores them")
    p.add_argument("--interval", type=float, default=1.0,
                   help="with --via fleet --follow: seconds between looks at the registry")
    p.set_defaults(func=cmd_monitor)
