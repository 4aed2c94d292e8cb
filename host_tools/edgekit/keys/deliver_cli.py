"""`edgekit keys deliver`: send the current KEY_EPOCH to one device, a list, or a tray.

    edgekit keys deliver /dev/ttyUSB0
    edgekit keys deliver --ports auto --json

`command`, `monitor`, `ota push` and `ota campaign` deliver it too, on the way, to a device
whose CAPS reports an older epoch; this command is for a whole tray at once after a
rotation, and for firmware whose CAPS has no epoch (it is sent anyway).
"""
import json
import sys
import time

from edgekit.errors import EdgekitError
from edgekit.transport.port_runner import add_parallel_option


def deliver_one(port, keystore, fleet_signer, args, progress):
    """One device: its result fields (the runner adds port, ok, seconds and failures)."""
    from edgekit.keys.deliver import catch_up
    from edgekit.ota.connect import Link
    from edgekit.registry.db import Registry
    registry = Registry(args.registry)      # one connection per thread (SQLite's rule)
    try:
        progress(port, "connecting")
        # No operator key: KEY_EPOCH is fleet-signed, and the device may not trust ours yet.
        # Link itself delivers only to firmware that reports its epoch; force covers the rest.
        link = Link(port, keystore, None, timeout=args.timeout, fleet_signer=fleet_signer)
        try:
            sent = link.key_epoch
            if sent["status"] == "unknown":
                progress(port, "sending", f"epoch {sent['epoch']}")
                sent = catch_up(link.session, link.caps, keystore, fleet_signer, force=True)
            if sent["after"] is not None:
                registry.record_key_epoch(link.device_id, sent["after"])
        finally:
            link.close()
    finally:
        registry.close()
    progress(port, "done", f"{link.device_id} {_describe(sent)}")
    return {"device_id": link.device_id, "status": sent["status"], "before": sent["before"],
            "after": sent["after"], "resigned": sent["resigned"]}


def _describe(sent):
    if sent["status"] == "delivered":
        return (f"epoch {sent['before'] if sent['before'] is not None else '?'} -> "
                f"{sent['epoch']}" + (" (signed again)" if sent["resigned"] else ""))
    if sent["status"] == "ahead":
        return (f"runs epoch {sent['before']}, above this key store's {sent['epoch']}: this "
                "host's keys are out of date")
    return f"already at epoch {sent['epoch']}"


def cmd_deliver(args):
    from edgekit.keys.cli import read_passphrase
    from edgekit.keys.deliver import LazySigner, stored_epoch
    from edgekit.keys.store import KeyStore
    from edgekit.registry.db import Registry
    from edgekit.transport.ports import resolve_all
    from edgekit.transport.port_runner import exit_status, run_per_port, tally
    from edgekit.ui import Progress
    ports = resolve_all((args.port or []) + (args.ports or []))
    if not ports:
        raise EdgekitError("name the devices' ports (e.g. /dev/ttyUSB0 emu:esp32-1), or "
                           "--ports auto|PORT...")
    keystore = KeyStore(args.keys).require()
    stored_epoch(keystore)                  # a missing or forged epoch file: before any port
    Registry(args.registry).close()         # fail early on an unusable registry path
    fleet_signer = LazySigner(keystore, lambda: read_passphrase(args))
    progress = Progress(ports, stream=sys.stderr, quiet=args.json)
    started = time.monotonic()
    results = run_per_port(
        ports, lambda p: deliver_one(p, keystore, fleet_signer, args, progress.update),
        args.parallel, progress.update)
    progress.finish()
    summary = {"epoch": keystore.epoch, "devices": results, **tally(results),
               "seconds": round(time.monotonic() - started, 2)}
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        for r in results:
            if r["ok"]:
                print(f"{r['port']}: {r['device_id']} {_describe(dict(r, epoch=summary['epoch']))}")
            else:
                print(f"{r['port']}: FAILED: {r['error']}")
        print(f"key epoch {summary['epoch']}: {summary['ok']} device(s) up to date, "
              f"{summary['failed']} failed, {summary['seconds']} s")
    return exit_status(results)


def register(sub, common, secret):
    p = sub.add_parser(
        "deliver", parents=[common, secret], help="send the current KEY_EPOCH to devices",
        description="Send the current KEY_EPOCH (epochs/epoch-N.cbor, fleet-signed) to each "
                    "device whose epoch is older, in parallel, and read back the epoch it "
                    "runs. Needs no passphrase, unless a device refuses the stored message "
                    "as replayed after a power cut: then the epoch is signed again with the "
                    "fleet key. command, monitor and ota push/campaign do the same on the way.")
    p.add_argument("port", nargs="*", metavar="PORT",
                   help="serial port, sn:SERIAL, loc:USB-LOCATION, socket://HOST:PORT or emu:ID")
    p.add_argument("--ports", nargs="+", metavar="PORT",
                   help="more devices (in parallel); `auto` = every USB board")
    p.add_argument("--registry", metavar="FILE",
                   help="registry recording each device's epoch (default "
                        "$EDGEKIT_HOME/registry.sqlite)")
    add_parallel_option(p, 16, "devices")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds per answer (default 10)")
    p.set_defaults(func=cmd_deliver)
