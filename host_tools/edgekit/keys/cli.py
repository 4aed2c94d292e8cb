"""`edgekit keys ...`: create, list, export, rotate and revoke the fleet's signing keys."""
import argparse
import getpass
import json
import os
import sys
from pathlib import Path

from edgekit.errors import EdgekitError
from edgekit.keys.store import PASSPHRASE_ENV, ROTATABLE, KeyStore, check_new_passphrase


def read_passphrase(args, confirm: bool = False) -> str:
    """From --passphrase-env NAME, else EDGEKIT_KEY_PASSPHRASE, else a terminal prompt."""
    name = getattr(args, "passphrase_env", None)
    if name:
        value = os.environ.get(name)
        if not value:
            raise EdgekitError(f"--passphrase-env {name}: environment variable {name} is not "
                               "set or empty; export it, or leave the option out to be asked")
        return value
    if os.environ.get(PASSPHRASE_ENV):
        return os.environ[PASSPHRASE_ENV]
    if not sys.stdin.isatty():
        raise EdgekitError(f"a key passphrase is needed and there is no terminal to ask: set "
                           f"{PASSPHRASE_ENV} or pass --passphrase-env NAME")
    first = getpass.getpass("Key passphrase: ")
    if confirm:
        check_new_passphrase(first)
        if getpass.getpass("Repeat passphrase: ") != first:
            raise EdgekitError("the two passphrases differ: nothing was written; run again")
    return first


def _store(args) -> KeyStore:
    return KeyStore(args.keys)


def _print_json(obj, out=None):
    text = json.dumps(obj, indent=2, sort_keys=True) + "\n"
    if out:
        Path(out).write_text(text)
    else:
        sys.stdout.write(text)


def _public_rows(store):
    keep = ("role", "kid", "status", "created", "epoch", "fingerprint", "changed")
    return [{k: e[k] for k in keep if k in e} for e in store.entries()]


def _print_table(rows):
    print(f"{'ROLE':9} {'KID':16} {'STATUS':9} {'EPOCH':>5}  {'CREATED':20} FINGERPRINT")
    for r in rows:
        print(f"{r['role']:9} {r['kid']:16} {r['status']:9} {r['epoch']:>5}  "
              f"{r['created']:20} {r['fingerprint']}")


def cmd_init(args):
    store = _store(args)
    store.refuse_existing()  # answer before asking for a passphrase that would be wasted
    store.init(read_passphrase(args, confirm=True))
    if args.json:
        _print_json({"keys": _public_rows(store), "epoch": store.epoch,
                     "directory": str(store.path)})
        return 0
    print(f"created fleet, firmware and operator keys in {store.path} (epoch 1)")
    _print_table(_public_rows(store))
    print("next: copy the fleet-*.key.pem file and the passphrase to offline storage "
          "(see docs/keys.md)")


def cmd_list(args):
    """The keys with each one's check against its files (KeyStore.audit_report); after
    showing them, a failed check stops with its one-line message (exit status 2)."""
    store = _store(args)
    report = store.audit_report(read_passphrase(args) if args.unlock else None)
    keep = ("role", "kid", "status", "created", "epoch", "fingerprint", "changed", "check",
            "private_key")
    rows = [{k: r[k] for k in keep if k in r} for r in report["keys"]]
    if args.json:
        _print_json({"epoch": report["epoch"], "keys": rows,
                     "epoch_check": report["epoch_check"], "epoch_file": report["epoch_file"]})
    else:
        print(f"{store.path}  key epoch {report['epoch']}")
        print(f"{'ROLE':9} {'KID':16} {'STATUS':9} {'EPOCH':>5}  {'CREATED':20} "
              f"{'FINGERPRINT':79} CHECK")
        for r in rows:
            print(f"{r['role']:9} {r['kid']:16} {r['status']:9} {r['epoch']:>5}  "
                  f"{r['created']:20} {r['fingerprint']:79} {r['check']}")
        print(f"KEY_EPOCH {report['epoch']} ({report['epoch_file']}): "
              f"{report['epoch_check']}")
        if any(r["private_key"] == "locked" for r in rows):
            print("private keys are encrypted and were not compared: add --unlock to "
                  "compare them too (asks for the passphrase)")
    bad = [r["tamper_message"] for r in report["keys"] if r["tamper_message"]]
    bad += [report["epoch_message"]] if report["epoch_message"] else []
    if bad:
        raise EdgekitError(bad[0] + (f" ({len(bad) - 1} more above)" if len(bad) > 1 else ""))


def cmd_export_public(args):
    data = _store(args).export_public()
    if args.json or args.out:
        _print_json(data, args.out)
        if args.out:
            print(f"wrote trust anchors (epoch {data['epoch']}) to {args.out}", file=sys.stderr)
        return 0
    print(f"trust anchors, key epoch {data['epoch']}")
    for role, keys in data["anchors"].items():
        for key in keys:
            print(f"  {role:9} {key['status']:9} kid {key['kid']}  {key['public_key']}")
    if data["revoked"]:
        print("  revoked: " + " ".join(data["revoked"]))


def cmd_rotate(args):
    store = _store(args)
    store.check_rotatable(args.role, args.compromised)  # fail before prompting
    old = store.current(args.role)["kid"]
    new = store.rotate(args.role, read_passphrase(args), compromised=args.compromised)
    path = store.epoch_path(new["epoch"])
    if args.json:
        _print_json({"role": args.role, "kid": new["kid"], "replaced": old,
                     "replaced_status": "revoked" if args.compromised else "previous",
                     "epoch": new["epoch"], "epoch_message": str(path)})
        return 0
    print(f"new {args.role} key {new['kid']}, key epoch {new['epoch']}")
    if args.compromised:
        print(f"old key {old} is revoked: devices stop trusting it once they apply {path}")
    else:
        print(f"old key {old} stays trusted during the rollout; when every device runs epoch "
              f"{new['epoch']}, run `edgekit keys revoke {old}`")
    print(f"KEY_EPOCH message for devices: {path}")


def cmd_revoke(args):
    store = _store(args)
    store.check_revocable(store.find_kid(args.kid))  # fail before prompting
    entry = store.revoke(args.kid, read_passphrase(args))
    path = store.epoch_path()
    if args.json:
        _print_json({"kid": entry["kid"], "role": entry["role"], "status": entry["status"],
                     "epoch": store.epoch, "epoch_message": str(path)})
        return 0
    print(f"revoked {entry['role']} key {entry['kid']}, key epoch {store.epoch}")
    print(f"KEY_EPOCH message for devices: {path}")


def cmd_epoch(args):
    from edgekit.keys.epoch import open_key_epoch
    store = _store(args)
    number = args.number if args.number is not None else store.epoch
    path = store.epoch_path(number)
    try:
        message = path.read_bytes()
    except FileNotFoundError:
        raise EdgekitError(f"no KEY_EPOCH {number} in {path.parent}: the current epoch is "
                           f"{store.epoch}") from None
    try:
        info = open_key_epoch(message, store.anchors()["anchors"]["fleet"][0])
    except ValueError as exc:
        raise EdgekitError(f"{path} does not verify with the fleet key ({exc}): do not send "
                           "it to devices; restore the epochs folder from backup") from None
    summary = {"epoch": info["epoch"], "seq": info["seq"],
               "signed_by": info["kid"].hex(), "bytes": len(message), "file": str(path),
               "anchors": {r: [k.hex() for k in keys] for r, keys in info["anchors"].items()},
               "revoked": [k.hex() for k in info["revoked"]]}
    if args.json:
        _print_json(summary)
        return 0
    print(f"{path}: KEY_EPOCH {summary['epoch']}, {summary['bytes']} bytes, signature valid "
          f"(fleet key {summary['signed_by']})")
    for role, keys in summary["anchors"].items():
        print(f"  {role}: " + ", ".join(keys))
    print("  revoked: " + (", ".join(summary["revoked"]) or "none"))


def register(subparsers):
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--keys", metavar="DIR",
                        help="key directory (default $EDGEKIT_HOME/keys, ~/.edgekit/keys)")
    common.add_argument("--json", action="store_true", help="machine-readable output")
    secret = argparse.ArgumentParser(add_help=False)
    secret.add_argument("--passphrase-env", metavar="NAME",
                        help=f"read the key passphrase from environment variable NAME "
                             f"(default: {PASSPHRASE_ENV} if set, else ask)")

    keys = subparsers.add_parser("keys", help="fleet, firmware and operator signing keys",
                                 description="Manage the Ed25519 keys of SPEC section 5. "
                                             "See docs/keys.md.")
    sub = keys.add_subparsers(dest="keys_command", metavar="ACTION", required=True)

    p = sub.add_parser("init", parents=[common, secret], help="create the three role keys",
                       description="Create fleet, firmware and operator keys (encrypted "
                                   "PKCS#8, mode 0600) and KEY_EPOCH 1. Never overwrites.")
    p.set_defaults(func=cmd_init)

    p = sub.add_parser("list", parents=[common, secret], help="list and check keys (no "
                       "secrets)",
                       description="Every key of the fleet: role, key id, status (current, "
                                   "previous, revoked), key epoch, creation time, fingerprint "
                                   "and its check: 'ok', or what does not match (kid, .pub "
                                   "files, private key, a weak key). Exits with status 2 when "
                                   "a check fails. No secret is read and no passphrase asked "
                                   "unless --unlock.")
    p.add_argument("--unlock", action="store_true",
                   help="decrypt each private key to compare its public half too (asks for "
                        "the passphrase)")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("export-public", parents=[common],
                       help="the trust anchors devices receive",
                       description="Public keys of every role (current first, then previous) "
                                   "and the current key epoch, as JSON with --json/--out.")
    p.add_argument("--out", metavar="FILE", help="write the JSON to FILE")
    p.set_defaults(func=cmd_export_public)

    p = sub.add_parser("rotate", parents=[common, secret], help="issue a new operator or "
                       "firmware key", description="Issue a new key; the old one stays "
                       "trusted as 'previous' until revoked. Writes a new KEY_EPOCH.")
    p.add_argument("role", choices=ROTATABLE)
    p.add_argument("--compromised", action="store_true",
                   help="revoke the replaced key at once instead of keeping it as previous")
    p.set_defaults(func=cmd_rotate)

    p = sub.add_parser("revoke", parents=[common, secret], help="stop trusting a previous key",
                       description="Revoke a previous operator/firmware key. Writes a new "
                                   "KEY_EPOCH.")
    p.add_argument("kid", metavar="KID", help="key id (hex, at least 4 digits)")
    p.set_defaults(func=cmd_revoke)

    p = sub.add_parser("epoch", parents=[common], help="verify and show a KEY_EPOCH message")
    p.add_argument("number", nargs="?", type=int, help="epoch number (default: current)")
    p.set_defaults(func=cmd_epoch)

    from edgekit.keys import deliver_cli   # its heavy imports wait for the command itself
    deliver_cli.register(sub, common, secret)
