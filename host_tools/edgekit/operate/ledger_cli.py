"""`edgekit ledger`: a water ATM's ledger, fetched into the registry and read back.

    edgekit ledger fetch /dev/ttyUSB0        # store the kiosk's new records, then acknowledge
    edgekit ledger show atm-0123abcd --json  # the stored ledger replayed: totals and balances

A kiosk keeps each sale, top-up and card change until the host acknowledges it, and stops
selling when `max_unacked` records wait. `fetch` pages through `tx_fetch`, writes every
record to the registry in one transaction (registry/ledger.py), and only then sends
`tx_ack`: a host cut at any point loses nothing and stores nothing twice. `show` replays
the stored records with edgekit.atm.Replay, which checks every balance the kiosk wrote.
"""
import json
import sys

from edgekit import atm
from edgekit import catalog as C
from edgekit.errors import EdgekitError
from edgekit.operate.connect import add_common_options, connect
from edgekit.operate.forward import crash_point
from edgekit.registry import ledger
from edgekit.registry.db import Registry

def _command(session, name, arguments):
    msg = session.request(C.COMMAND, {C.K_NAME: name, C.K_ARGS: arguments},
                          expect=C.COMMAND_RESULT)
    return msg, msg.payload.get(C.K_RESULT)


def cmd_fetch(args):
    session, transport, registry, device_id = connect(args, need_operator=True)
    try:
        kind = registry.get(device_id)["kind"]
        if kind != "water_atm":
            raise EdgekitError(f"{device_id} is a {kind}: only a water ATM keeps a ledger")

        def progress(count, last):
            if not args.json:
                print(f"  fetched {count} records (kiosk's last: {last})", file=sys.stderr)
        rows = atm.read_pages(lambda arguments: _command(session, "tx_fetch", arguments)[1],
                              progress)
        new, known = ledger.store(registry, device_id, rows)
        crash_point("ledger-stored")
        acked = None
        if rows and not args.no_ack:
            msg, _ = _command(session, "tx_ack", {"upto": rows[-1][0]})
            registry.touch(device_id, msg.seq)
            acked = rows[-1][0]
            crash_point("ledger-acked")
        registry.record_event(device_id, "ledger", {"stored": new, "already": known,
                                                    "acked": acked})
    finally:
        transport.close()
    summary = {"device": device_id, "fetched": len(rows), "stored": new, "already_stored": known,
               "first": rows[0][0] if rows else None, "last": rows[-1][0] if rows else None,
               "acked": acked}
    if args.json:
        print(json.dumps(summary, indent=2))
    elif not rows:
        print(f"{device_id}: no new ledger records")
    else:
        also = f" ({known} were already stored)" if known else ""
        tail = f"acknowledged up to {acked}" if acked else "NOT acknowledged (--no-ack)"
        print(f"{device_id}: {new} ledger records stored, {rows[0][0]}..{rows[-1][0]}{also}; "
              f"{tail}")
    return 0


def replayed(rows):
    replay = atm.Replay()
    for seq, record, _ in rows:
        replay.apply(seq, record)
    return replay


def cmd_show(args):
    with Registry(args.registry) as reg:
        if reg.get(args.device_id) is None:
            raise EdgekitError(f"no device {args.device_id!r} in {reg.path}: see `edgekit "
                               "devices list`")
        rows = ledger.records(reg, args.device_id)
    replay = replayed(rows)          # LedgerError (an EdgekitError) names the record
    cards = {uid.hex(): {"balance": bal, "role": replay.roles.get(uid)}
             for uid, bal in sorted(replay.balances.items())}
    out = {"device": args.device_id, "records": len(rows),
           "first": rows[0][0] if rows else None, "last": rows[-1][0] if rows else None,
           "dispenses": replay.dispenses, "interrupted": replay.interrupted,
           "delivered_ml": replay.delivered_ml, "uncertain_ml": replay.uncertain_ml,
           "leaked_ml": replay.leaked_ml, "charged": replay.charged,
           "credited": replay.credited, "dispensing": replay.open is not None, "cards": cards}
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    if not rows:
        print(f"{args.device_id}: no ledger stored (run `edgekit ledger fetch PORT`)")
        return 0
    print(f"{args.device_id}: ledger records {out['first']}..{out['last']} ({len(rows)})")
    print(f"  dispenses {replay.dispenses} ({replay.interrupted} interrupted), delivered "
          f"{replay.delivered_ml / 1000:.3f} L (+ up to {replay.uncertain_ml / 1000:.3f} L "
          f"uncertain), leaked {replay.leaked_ml / 1000:.3f} L")
    print(f"  charged {replay.charged}, credited {replay.credited}")
    for uid, card in cards.items():
        print(f"  card {uid}  {card['role'] or '?':<8} balance {card['balance']}")
    return 0


def register(subparsers):
    p = subparsers.add_parser("ledger", help="a water ATM's ledger: fetch into the registry, show",
                              description=__doc__.split("\n\n")[-1].strip())
    sub = p.add_subparsers(dest="ledger_command", metavar="COMMAND", required=True)
    f = sub.add_parser("fetch", help="store the kiosk's new records, then acknowledge them",
                       description="Fetch the ledger records the kiosk holds beyond its "
                                   "acknowledged position, store them in the registry in one "
                                   "transaction, then acknowledge them (the kiosk may then "
                                   "forget them).")
    add_common_options(f)
    f.add_argument("--no-ack", action="store_true",
                   help="store only: the kiosk keeps the records (and counts them unacked)")
    f.set_defaults(func=cmd_fetch)
    s = sub.add_parser("show", help="the stored ledger replayed: totals and card balances",
                       description="Replay a kiosk's stored ledger (every balance checked) and "
                                   "print its totals and card balances.")
    s.add_argument("device_id", help="the kiosk's device id (see `edgekit devices list`)")
    s.add_argument("--registry", metavar="FILE", help="registry database")
    s.add_argument("--json", action="store_true", help="JSON output")
    s.set_defaults(func=cmd_show)
