"""`edgekit provision`: one device, or a tray of them in parallel.

    edgekit provision /dev/ttyUSB0 --kind water_meter --site north-7 --location 52.37,4.89
    edgekit provision --ports auto --kind env_sensor --site harbour --config site.toml --json
"""
import getpass
import json
import os
import sys
import time

from edgekit import appschema
from edgekit import catalog as C
from edgekit.errors import EdgekitError
from edgekit.keys.store import PASSPHRASE_ENV, KeyStore, edgekit_home
from edgekit.protocol.clock import ensure as ensure_clock
from edgekit.protocol.session import Session
from edgekit.provision import flow
from edgekit.registry.db import Registry
from edgekit.transport import SerialTransport
from edgekit.transport.port_runner import (add_parallel_option, exit_status, run_per_port,
                                           tally)
from edgekit.transport.ports import resolve_all
from edgekit.ui import Progress


def _location(text):
    if text is None:
        return None
    try:
        lat, lon = (float(v) for v in text.split(","))
    except ValueError:
        raise EdgekitError(f"--location {text!r}: give LAT,LON in decimal degrees, e.g. "
                           "52.3702,4.8952") from None
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise EdgekitError(f"--location {text!r}: latitude is -90..90, longitude -180..180")
    return (lat, lon)


def _passphrase():
    value = os.environ.get(PASSPHRASE_ENV)
    if value:
        return value
    if not sys.stdin.isatty():
        raise EdgekitError(f"the fleet key passphrase is needed: set {PASSPHRASE_ENV} or run "
                           "in a terminal to be asked")
    return getpass.getpass("fleet key passphrase: ")


def _load_fleet(args):
    store = KeyStore(args.keys or edgekit_home() / "keys").require()
    passphrase = _passphrase()
    return flow.Fleet(store, store.signer("fleet", passphrase),
                      store.signer("operator", passphrase))


def _sync_clock(session, fleet, registry, device_id):
    """Set the new device's clock (SPEC 8.4): its first operator-signed frame."""
    if fleet.operator_signer is None:
        return None
    session.signer = fleet.operator_signer
    session.next_seq = lambda: fleet.next_seq(C.ROLE_OPERATOR)
    return ensure_clock(session, registry, device_id)


def provision_one(port, fleet, args, config, location, progress):
    """One device: its result fields (the runner adds port, ok, seconds and failures)."""
    registry = Registry(args.registry)     # one connection per thread (SQLite's rule)
    step = [None]

    def report(name, detail=""):
        step[0] = name
        progress(port, name, detail)
    try:
        with SerialTransport(port) as transport:
            session = Session(transport, timeout=args.timeout)
            row = flow.provision(session, fleet, registry, args.kind, args.site, config=config,
                                 location=location, reprovision=args.reprovision,
                                 net=getattr(args, "net_config", None), progress=report)
            report("clock")
            clock = _sync_clock(session, fleet, registry, row["device_id"])
    except (EdgekitError, OSError) as exc:
        exc.step = step[0]          # the report's "step": where a tray's failures happened
        raise
    finally:
        registry.close()
    progress(port, "done", row["device_id"])
    return {"device_id": row["device_id"], "kind": row["kind"], "board": row["board"],
            "fw_version": row["fw_version"], "clock": clock}


def cmd_provision(args):
    ports = resolve_all(([args.port] if args.port else []) + (args.ports or []))
    if not ports:
        raise EdgekitError("name the device's port (e.g. /dev/ttyUSB0), or --ports auto|PORT...")
    appschema.check_kind(args.kind)
    config = appschema.load_config_file(args.config) if args.config else {}
    try:
        appschema.validate(args.kind, config)   # before touching any device
    except EdgekitError as exc:
        if not args.config:
            raise
        raise EdgekitError(f"{args.config}: {exc}") from None
    location = _location(args.location)
    if args.broker or args.net or args.ca:
        from edgekit.fleet import netconfig
        extra = appschema.load_config_file(args.net) if args.net else {}
        args.net_config = netconfig.build(args.broker, extra, args.ca)
    if location and len(ports) > 1:
        raise EdgekitError("--location names one place: provision one device at a time, or "
                           "set locations afterwards with `edgekit devices set`")
    fleet = _load_fleet(args)
    Registry(args.registry).close()        # fail early on an unusable registry path
    progress = Progress(ports, stream=sys.stderr, quiet=args.json)
    started = time.monotonic()
    results = run_per_port(
        ports, lambda p: provision_one(p, fleet, args, config, location, progress.update),
        args.parallel, progress.update)
    progress.finish()
    summary = {"kind": args.kind, "site": args.site, "devices": results, **tally(results),
               "seconds": round(time.monotonic() - started, 2)}
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        for r in results:
            line = (f"{r['port']}: {r['device_id']} provisioned in {r['seconds']} s" if r["ok"]
                    else f"{r['port']}: FAILED: {r['error']}")
            print(line)
        print(f"{summary['ok']} provisioned, {summary['failed']} failed, "
              f"{summary['seconds']} s")
    return exit_status(results)


def register(subparsers):
    p = subparsers.add_parser(
        "provision", help="give factory-fresh devices their identity, config and trust anchors",
        description="Provision devices: the device makes its key pair, the fleet root "
                    "certifies it, config and trust anchors are committed atomically, and the "
                    "registry records it. Safe to rerun after an interruption.")
    p.add_argument("port", nargs="?", help="serial port, sn:SERIAL, loc:USB-LOCATION, "
                                           "socket://HOST:PORT or emu:ID")
    p.add_argument("--ports", nargs="+", metavar="PORT",
                   help="several devices at once (in parallel); `auto` = every USB board")
    p.add_argument("--kind", required=True, choices=appschema.KINDS)
    p.add_argument("--site", required=True, help="site name recorded in the certificate")
    p.add_argument("--config", metavar="FILE", help="app settings (TOML or JSON), validated "
                                                    "against the app's schema before sending")
    p.add_argument("--location", metavar="LAT,LON")
    p.add_argument("--broker", metavar="URL",
                   help="the fleet's MQTT broker, mqtt://HOST[:PORT] or mqtts://HOST[:PORT] "
                        "(TLS, with --ca): the device also reports over its network "
                        "(docs/fleet.md)")
    p.add_argument("--ca", metavar="FILE",
                   help="with an mqtts:// broker: the CA certificate (PEM or DER) that issued "
                        "the broker's; the device trusts it alone")
    p.add_argument("--net", metavar="FILE",
                   help="network settings (TOML/JSON: password, ssid, psk, apn, keepalive, "
                        "poll_s, connect = always|to_report); stored on the device, "
                        "never returned")
    p.add_argument("--reprovision", action="store_true",
                   help="wipe an already provisioned device first (operator-signed)")
    p.add_argument("--keys", metavar="DIR", help="key directory (default $EDGEKIT_HOME/keys)")
    p.add_argument("--registry", metavar="FILE",
                   help="registry database (default $EDGEKIT_HOME/registry.sqlite)")
    add_parallel_option(p, 16, "devices")
    p.add_argument("--timeout", type=float, default=5.0, help="seconds per answer (default 5)")
    p.add_argument("--json", action="store_true", help="one JSON report on stdout")
    p.set_defaults(func=cmd_provision)
