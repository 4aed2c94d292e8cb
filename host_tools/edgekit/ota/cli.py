"""`edgekit ota build|sign|inspect|push|campaign`: bundles, updates, staged rollouts."""
import argparse
import json
import sys
from datetime import datetime, timezone
from pathlib import Path

from edgekit import catalog as C
from edgekit.errors import EdgekitError


def _print_json(obj):
    sys.stdout.write(json.dumps(obj, indent=2, sort_keys=True) + "\n")


def _keystore(args):
    from edgekit.keys.store import KeyStore
    return KeyStore(args.keys)


def _passphrase(args):
    from edgekit.keys.cli import read_passphrase
    return read_passphrase(args)


# -- build / sign / inspect ---------------------------------------------------------------
def cmd_build(args):
    from edgekit.ota import bundle, seqlog
    if args.max_seq_step < 0:
        raise EdgekitError(f"--max-seq-step {args.max_seq_step}: give 0 (no step warning) or "
                           "a positive number")
    last = seqlog.load()                # a damaged record stops here, before anything is built
    b = bundle.build(args.board, args.kind, args.version, seq=args.seq,
                     sources=args.source or None, deflate=not args.no_deflate,
                     mpy_cross=args.mpy_cross, deadline=args.trial_deadline,
                     app_only=args.app_only)
    board = b.manifest[C.K_BOARD]
    for text in seqlog.warnings(last, board, args.kind, b.seq, args.max_seq_step,
                                explicit=args.seq is not None):
        print(f"edgekit: warning: {text}", file=sys.stderr)
    out = Path(args.out or f"{args.kind}-{board}-{args.version}.ekota")
    b.save(out)
    try:
        seqlog.record(last, board, args.kind, b.seq, args.version, out.resolve())
    except OSError as exc:
        print(f"edgekit: warning: the OTA build record was not updated ({exc.strerror}): the "
              "next build cannot warn about its sequence step", file=sys.stderr)
    d = b.describe()
    if args.json:
        d["file"] = str(out)
        _print_json(d)
        return 0
    print(f"built {out}: {d['kind']} {d['version']} for {d['board']} (seq {d['seq']}), "
          f"{len(d['files'])} files, {d['installed_bytes']} bytes installed, "
          f"{d['transfer_bytes']} to transfer")
    print(f"next: edgekit ota sign {out}   (on the machine that holds the firmware key)")


def cmd_sign(args):
    from edgekit.ota.bundle import Bundle
    from edgekit.ota.sign import sign_with_keystore
    b = Bundle.load(args.bundle)
    store = _keystore(args)
    store.current(C.ROLE_FIRMWARE)          # no key directory: say so before asking
    signed = sign_with_keystore(b, store, _passphrase(args))
    out = Path(args.out or args.bundle)
    signed.save(out)
    kid = store.current(C.ROLE_FIRMWARE)["kid"]
    if args.json:
        _print_json({"file": str(out), "seq": signed.seq, "version": signed.version,
                     "signed_by": kid, "manifest_bytes": len(signed.signed)})
        return 0
    print(f"signed {out} with firmware key {kid} (manifest {len(signed.signed)} bytes)")


def _trusted_keys(args):
    if args.pubkey:
        raw = Path(args.pubkey).read_bytes()
        if len(raw) != 32:
            try:
                raw = bytes.fromhex(raw.decode().strip())
            except ValueError:
                raw = b""
        if len(raw) != 32:
            raise EdgekitError(f"{args.pubkey}: expected a raw 32-byte Ed25519 public key "
                               "(firmware-<kid>.pub from the key directory) or its hex")
        return [raw]
    store = _keystore(args)
    if not store.exists():
        return None
    from edgekit.ota.sign import trusted_firmware_keys
    return trusted_firmware_keys(store)


def cmd_inspect(args):
    from edgekit.ota.bundle import Bundle, BundleError
    b = Bundle.load(args.bundle)
    d = b.describe()
    problems = []
    try:
        b.check_payloads()
        d["payloads"] = "ok"
    except BundleError as exc:
        d["payloads"] = "damaged"
        problems.append(str(exc))
    keys = _trusted_keys(args)
    if b.signed is None:
        d["signature"] = "unsigned"
    elif keys is None:
        d["signature"] = "not checked (no key directory; pass --keys DIR or --pubkey FILE)"
    else:
        try:
            d["signature"] = "valid"
            d["signed_by"] = b.verify(keys).hex()
        except EdgekitError as exc:
            d["signature"] = "INVALID"
            problems.append(str(exc))
    d["problems"] = problems
    if args.json:
        _print_json(d)
    else:
        issued = datetime.fromtimestamp(d["issued"] or 0, timezone.utc).isoformat()
        print(f"{args.bundle}: {d['kind']} {d['version']} for {d['board']}")
        print(f"  sequence {d['seq']}  min runtime {d['min_runtime']}  policy {d['policy']} "
              f"(trial deadline {d['trial_deadline_s']} s)  issued {issued}")
        print(f"  signature: {d['signature']}" + (f" (firmware key {d['signed_by']})"
                                                   if d.get("signed_by") else ""))
        print(f"  payloads: {d['payloads']}; {d['installed_bytes']} bytes installed, "
              f"{d['transfer_bytes']} to transfer, manifest {d['manifest_bytes']} bytes")
        print(f"  {'FILE':28} {'SIZE':>7} {'SENT':>7} ENC      SHA-256")
        for f in d["files"]:
            print(f"  {f['name']:28} {f['size']:>7} {f['transfer']:>7} {f['encoding']:8} "
                  f"{f['sha256'][:16]}…")
        for p in problems:
            print(f"  problem: {p}")
    return 1 if problems or d["signature"] == "INVALID" else 0


def register(subparsers):
    keys = argparse.ArgumentParser(add_help=False)
    keys.add_argument("--keys", metavar="DIR",
                      help="key directory (default $EDGEKIT_HOME/keys)")
    out = argparse.ArgumentParser(add_help=False)
    out.add_argument("--json", action="store_true", help="machine-readable output")
    secret = argparse.ArgumentParser(add_help=False)
    secret.add_argument("--passphrase-env", metavar="NAME",
                        help="read the key passphrase from environment variable NAME "
                             "(default: EDGEKIT_KEY_PASSPHRASE if set, else ask)")

    ota = subparsers.add_parser("ota", help="build, sign, inspect and install firmware updates",
                                description="Signed, resumable, power-safe updates (SPEC 9). "
                                            "See docs/ota.md.")
    sub = ota.add_subparsers(dest="ota_command", metavar="ACTION", required=True)

    p = sub.add_parser("build", parents=[out], help="compile an app into an update bundle",
                       description="Compile the firmware library and the kind's app to .mpy "
                                   "with the board's MicroPython version and write a bundle "
                                   "with its (unsigned) manifest.")
    p.add_argument("--board", required=True, help="board definition (boards/NAME.json)")
    p.add_argument("--kind", required=True, help="device kind, e.g. water_meter")
    p.add_argument("--version", required=True, help="semantic version MAJOR.MINOR.PATCH")
    p.add_argument("--seq", type=int, help="sequence number for anti-rollback, 1..2^63-2 "
                   "(default: the build time in unix seconds); must grow with every release")
    p.add_argument("--max-seq-step", type=int, default=1000, metavar="N",
                   help="warn when --seq is more than N above the highest sequence built for "
                        "this board and kind (default 1000; 0: never)")
    p.add_argument("--source", action="append", metavar="FILE",
                   help="source file to include (repeat; default: the firmware core folders, "
                        "the catalog and the kind's folder, firmware/kinds/KIND)")
    p.add_argument("--app-only", action="store_true",
                   help="only the kind's folder (app, schema, its own modules): the core "
                        "stays frozen in the board image "
                        "(what a 110 KB-heap board can afford; see docs/ota.md)")
    p.add_argument("--no-deflate", action="store_true", help="send files uncompressed")
    p.add_argument("--trial-deadline", type=int, default=120, metavar="SECONDS",
                   help="seconds the new image has to pass its health checks (default 120)")
    p.add_argument("--mpy-cross", metavar="PATH", help="mpy-cross to use (default: PATH's)")
    p.add_argument("--out", "-o", metavar="FILE", help="bundle file to write")
    p.set_defaults(func=cmd_build)

    p = sub.add_parser("sign", parents=[keys, out, secret],
                       help="sign a bundle's manifest with the firmware key",
                       description="Sign the manifest (COSE_Sign1, DOC_OTA_MANIFEST) with the "
                                   "current firmware key. Runs offline: needs only the "
                                   "bundle and the key directory.")
    p.add_argument("bundle", metavar="BUNDLE")
    p.add_argument("--out", "-o", metavar="FILE", help="write here (default: in place)")
    p.set_defaults(func=cmd_sign)

    p = sub.add_parser("inspect", parents=[keys, out], help="show and verify a bundle",
                       description="Show a bundle's manifest and files; check every payload "
                                   "against its digest and the signature against the "
                                   "trusted firmware keys. Exit code 1 when anything fails.")
    p.add_argument("bundle", metavar="BUNDLE")
    p.add_argument("--pubkey", metavar="FILE",
                   help="verify with this firmware public key instead of the key directory")
    p.set_defaults(func=cmd_inspect)

    for module in ("edgekit.ota.push_cli", "edgekit.ota.campaign_cli"):
        try:
            __import__(module, fromlist=["register"]).register(sub, keys, out, secret)
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise
