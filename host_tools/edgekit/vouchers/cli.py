"""`edgekit voucher mint|inspect`: water-ATM credit vouchers a vendor sells offline.

    edgekit voucher mint --device atm-1a2b3c4d5e6f --amount 500 --count 20 --expires-days 90
    edgekit voucher inspect "EKV1:0oRY..." --device atm-1a2b3c4d5e6f

`mint` signs with the current operator key of the key directory, takes the serials from the
kiosk's serial book there (never reused) and prints one QR text per line (or JSON).
"""
import argparse
import json
import sys
import time
from pathlib import Path

from edgekit import catalog as C
from edgekit.errors import EdgekitError


def _keystore(args):
    from edgekit.keys.store import KeyStore
    store = KeyStore(args.keys)
    if not store.exists():
        raise EdgekitError(f"no key directory at {store.path}: run `edgekit keys init` or "
                           "pass --keys DIR")
    return store


def cmd_mint(args):
    from edgekit.keys.cli import read_passphrase
    from edgekit.vouchers import SerialBook, mint, to_qr_text
    if not 1 <= args.count <= 10000:
        raise EdgekitError("--count: 1..10000 vouchers at a time")
    store = _keystore(args)
    card = None
    if args.card:
        try:
            card = bytes.fromhex(args.card)
        except ValueError:
            raise EdgekitError("--card: the card UID in hex, e.g. 04a1b2c3") from None
    now = int(time.time())
    expires = now + args.expires_days * 86400 if args.expires_days else None
    signer = store.signer(C.ROLE_OPERATOR, read_passphrase(args))
    serials = SerialBook(store.path).take(args.device, args.count)
    rows = []
    for serial in serials:
        v = mint(signer, args.device, serial, args.amount, issued=now, expires=expires,
                 card=card)
        rows.append({"serial": serial, "amount": args.amount, "qr": to_qr_text(v)})
    out = open(args.out, "w") if args.out else sys.stdout
    try:
        if args.json:
            out.write(json.dumps({"device": args.device, "vouchers": rows}, indent=2) + "\n")
        else:
            for r in rows:
                out.write(r["qr"] + "\n")
    finally:
        if args.out:
            out.close()
    if args.out or args.json:
        print(f"minted {len(rows)} vouchers of {args.amount} for {args.device}, serials "
              f"{serials[0]}..{serials[-1]}", file=sys.stderr)
    return 0


def cmd_inspect(args):
    from edgekit.vouchers import VoucherError, check, from_qr_text
    text = args.voucher
    if Path(text).is_file():
        text = Path(text).read_text().strip()
    data = from_qr_text(text)
    store = _keystore(args)
    from edgekit.protocol.cose import kid_of
    keys = {kid_of(k): k for k in store.anchors()["anchors"][C.ROLE_OPERATOR]}
    try:
        fields = check(data, keys, device_id=args.device, now=int(time.time()))
        fields["valid"] = True
    except VoucherError as exc:
        fields = {"valid": False, "problem": str(exc), "code": C.error_name(exc.code)}
    if args.json:
        print(json.dumps({k: (v.hex() if isinstance(v, bytes) else v)
                          for k, v in fields.items()}, indent=2))
    elif fields["valid"]:
        print(f"valid voucher {fields['serial']} for {fields['device_id']}: "
              f"{fields['amount']} units" + (f", expires {fields['expires']}"
                                             if fields.get("expires") else ""))
    else:
        print(f"INVALID: {fields['problem']}")
    return 0 if fields["valid"] else 1


def register(subparsers):
    keys = argparse.ArgumentParser(add_help=False)
    keys.add_argument("--keys", metavar="DIR", help="key directory (default $EDGEKIT_HOME/keys)")
    keys.add_argument("--json", action="store_true", help="machine-readable output")
    p = subparsers.add_parser("voucher", help="water-ATM credit vouchers (sold offline)")
    sub = p.add_subparsers(dest="voucher_command", metavar="COMMAND")
    m = sub.add_parser("mint", parents=[keys], help="sign vouchers for a kiosk",
                       description="Sign credit vouchers for one kiosk with the operator key; "
                                   "prints one QR text per line.")
    m.add_argument("--device", required=True, help="the kiosk's device id (atm-...)")
    m.add_argument("--amount", required=True, type=int, help="credit in money units")
    m.add_argument("--count", type=int, default=1, help="how many (serials follow on)")
    m.add_argument("--expires-days", type=int, default=90, metavar="DAYS",
                   help="valid for this many days (0: no expiry; default 90)")
    m.add_argument("--card", metavar="HEX", help="bind to one card UID")
    m.add_argument("--out", "-o", metavar="FILE", help="write the QR texts here")
    m.add_argument("--passphrase-env", metavar="NAME",
                   help="read the key passphrase from environment variable NAME")
    m.set_defaults(func=cmd_mint)
    i = sub.add_parser("inspect", parents=[keys], help="check a voucher like a kiosk would")
    i.add_argument("voucher", help="the EKV1: text, or a file holding it")
    i.add_argument("--device", help="the kiosk that would redeem it")
    i.set_defaults(func=cmd_inspect)
    p.set_defaults(func=lambda a: p.print_help() or 2)
