"""`edgekit ota push TARGET BUNDLE`: update one device, with live progress; TARGET is a port,
or with `--via fleet` a device id reached through the MQTT broker (SPEC 13.7)."""
import json
import sys
import time

from edgekit import catalog as C
from edgekit.errors import EdgekitError
from edgekit.fleet.cli_options import add_transfer_waits, add_via_fleet


def _emit_json(event):
    sys.stdout.write(json.dumps(event, sort_keys=True, default=str) + "\n")
    sys.stdout.flush()


class LiveLine:
    """Bytes, rate and ETA on one stderr line (redrawn on a terminal, every 2 s in logs)."""

    def __init__(self, stream=None):
        self.stream = stream or sys.stderr
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self._last = 0.0

    def __call__(self, e):
        kind = e["event"]
        if kind in ("progress", "done"):
            now = time.monotonic()
            if not self.tty and kind == "progress" and now - self._last < 2.0:
                return
            self._last = now
            eta = "" if e.get("eta_s") is None else f"  ETA {e['eta_s']:.0f} s"
            line = (f"  {e['held'] / 1024:.1f} of {e['total'] / 1024:.1f} KB  "
                    f"{e['rate'] / 1024:.1f} KB/s{eta}")
            end = "\n" if kind == "done" or not self.tty else ""
            self.stream.write(("\r\x1b[2K" if self.tty else "") + line + end)
        elif kind == "offered":
            self.stream.write(f"offered update {e['seq']}: the device already holds "
                              f"{e['held']} of {e['total']} bytes ({e['files_held']} files)\n")
        elif kind == "installed":
            self.stream.write("installed; the device reboots into its trial\n")
        elif kind == "digest_mismatch":
            self.stream.write(f"\nthe device discarded a file: {e['detail']}\n")
        elif kind == "waiting":
            self.stream.write(f"\nthe device went silent ({e['held']} of {e['total']} bytes "
                              f"held): {e['detail']}\nwaiting for it; the transfer resumes "
                              "from what it holds\n")
        self.stream.flush()


def _signers(args):
    from edgekit.keys.cli import read_passphrase
    from edgekit.keys.store import KeyStore
    keystore = KeyStore(args.keys)
    keystore.current(C.ROLE_OPERATOR)           # no key directory: say so before asking
    return keystore, keystore.signer(C.ROLE_OPERATOR, read_passphrase(args))


def _record(args, device_id, result):
    from edgekit.registry.db import Registry
    try:
        with Registry(args.registry) as reg:
            if reg.get(device_id) is None:
                return
            if result.get("clock"):
                reg.record_clock(device_id, result["clock"]["drift_s"])
            reg.record_event(device_id, "ota_" + result["status"],
                             {k: result.get(k) for k in ("seq", "version", "reason", "code")})
            if result["status"] == "installed":
                reg.upsert_device(device_id, fw_version=result["version"])
    except EdgekitError as exc:
        print(f"edgekit: warning: the registry was not updated: {exc}", file=sys.stderr)


def _open(args, keystore, operator):
    """The device behind TARGET: a Link on its port, or a FleetLink through the broker."""
    if args.via == "port":
        from edgekit.ota.connect import Link
        return Link(args.target, keystore, operator)
    import os

    from edgekit.fleet.device_link import FleetLink
    from edgekit.fleet.service import parse_url
    from edgekit.registry.db import Registry
    broker = parse_url(args.broker, args.ca)
    with Registry(args.registry) as registry:
        return FleetLink(registry, args.target, keystore, operator, broker,
                         username=args.username,
                         password=os.environ.get("EDGEKIT_MQTT_PASSWORD"),
                         min_timeout=args.timeout)


def cmd_push(args):
    from edgekit.ota.bundle import Bundle
    from edgekit.ota.connect import check_target
    from edgekit.ota.push import Pusher, fetch_result
    from edgekit.ota.sign import trusted_firmware_keys
    keystore, operator = _signers(args)
    progress = _emit_json if args.json else LiveLine()
    if args.result_only:
        link = _open(args, keystore, operator)
        try:
            result = fetch_result(link.session, link.public_key)
        finally:
            link.close()
        if args.json:
            _emit_json(dict(result, event="result"))
        else:
            print(f"{result['device_id']}: {result['status']} (update {result['seq']}, "
                  f"{result['version']}); running {result['running']}: {result['reason']}")
        return 0 if result["status"] in ("installed", "none", "pending") else 1
    if not args.bundle:
        raise EdgekitError("name the bundle to push (or pass --result-only)")
    bundle = Bundle.load(args.bundle)
    bundle.verify(trusted_firmware_keys(keystore))   # a bad bundle never reaches a device
    if not args.stage_only and args.via == "port":
        from edgekit.emu.port_names import warn_deadlines
        warn_deadlines([args.target])
    link = _open(args, keystore, operator)
    try:
        check_target(bundle, link.caps)
        pusher = Pusher(link.session, bundle, link.public_key, progress=progress,
                        window=args.window)
        if args.via == "fleet":
            from edgekit.ota.push_resume import run_resuming
            # A silent device over the network is waited for and offered again (it
            # resumes), so the silence that ends a round need not be the cable's 30 s.
            pusher.stall_s = min(pusher.stall_s, 2 * args.timeout)
            result = run_resuming(pusher, install=not args.stage_only,
                                  patience_s=args.patience)
        else:
            result = pusher.run(install=not args.stage_only)
    finally:
        link.close()
    result = dict(result, device_id=link.device_id, clock=link.clock)
    stats = dict(pusher.stats)
    if args.stage_only:
        result.update(seq=bundle.seq, version=bundle.version)
    else:
        _record(args, link.device_id, result)
    if args.json:
        _emit_json(dict(result, event="summary", stats=stats))
    else:
        rate = stats["new_bytes"] / stats["seconds"] if stats["seconds"] else 0
        print(f"{link.device_id}: {result['status']} {bundle.version} (update {bundle.seq}); "
              f"sent {stats['sent_bytes']} of {stats['stream_bytes']} bytes "
              f"({stats['held_at_start']} already there) at {rate / 1024:.1f} KB/s"
              + (f"; {result.get('reason')}" if result.get("reason") else ""))
    return 0 if result["status"] in ("installed", "staged") else 1


def register(sub, keys, out, secret):
    p = sub.add_parser("push", parents=[keys, out, secret], help="update one device",
                       description="Offer a signed bundle to one device, send what it lacks "
                                   "(resumes an interrupted push), install it and wait for "
                                   "the device-signed update result. Exit code 1 when the "
                                   "device rolled back or refused.")
    p.add_argument("target", metavar="TARGET",
                   help="serial port (/dev/ttyUSB0, COM3), socket://HOST:PORT or emu:ID; "
                        "with --via fleet, the device id")
    p.add_argument("bundle", metavar="BUNDLE", nargs="?", help="signed bundle (.ekota)")
    p.add_argument("--registry", metavar="FILE",
                   help="registry to record the result in (default $EDGEKIT_HOME)")
    p.add_argument("--stage-only", action="store_true",
                   help="transfer and verify, but do not install (install with a later push)")
    p.add_argument("--result-only", action="store_true",
                   help="only fetch and show the device's last update result")
    p.add_argument("--window", type=int, metavar="N",
                   help="chunks in flight (default: what the device advertises)")
    net = p.add_argument_group("through the broker (--via fleet, docs/fleet.md)")
    add_via_fleet(net, "fleet: TARGET is a device id; the update travels as MQTT messages on "
                       "its topics and resumes across outages (SPEC 13.7)")
    add_transfer_waits(net, 600.0, "how long a silent device (network or power out) is "
                                   "waited for before the push gives up (it resumes later)")
    p.set_defaults(func=cmd_push)
