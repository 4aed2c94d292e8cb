# Operator commands of the water ATM (COMMAND messages, operator-signed and replay-checked by
# the agent before they get here). Every change to money is a ledger record first.
import binascii

import cards
import catalog as C
import cbor
import voucher
from agent import refuse

_BUDGET = 480               # bytes of records per answer: small contiguous allocations
_U31 = 0x7FFFFFFF


def uid_arg(args, key="uid"):
    uid = args.get(key)
    if isinstance(uid, str):
        try:
            uid = binascii.unhexlify(uid)
        except ValueError:
            uid = None
    if not isinstance(uid, bytes) or not 4 <= len(uid) <= 10:
        refuse(C.E_BAD_REQUEST, "%s: the card UID, 4..10 bytes (hex text or bytes)" % key)
    return uid


def _int(args, key, lo, hi, default=None):
    v = args.get(key, default)
    if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
        refuse(C.E_BAD_REQUEST, "%s: a whole number %d..%d" % (key, lo, hi))
    return v


def _bands(value):
    """[[litres per day (0: no limit), price per m3], ...]: limits rising, 0 only last."""
    if not isinstance(value, list) or not 1 <= len(value) <= 4:
        refuse(C.E_BAD_REQUEST, "bands: 1..4 [litres per day, price per m3] pairs")
    last = 0
    for i, band in enumerate(value):
        if not isinstance(band, list) or len(band) != 2 or \
                not all(isinstance(x, int) and not isinstance(x, bool) and 0 <= x <= _U31
                        for x in band):
            refuse(C.E_BAD_REQUEST, "band %d: [litres per day, price per m3], whole numbers"
                   % i)
        if band[0] == 0 and i != len(value) - 1:
            refuse(C.E_BAD_REQUEST, "only the last band may be unlimited (0 litres)")
        if band[0] and band[0] <= last:
            refuse(C.E_BAD_REQUEST, "band limits must rise: %d after %d" % (band[0], last))
        last = band[0]
    return value


def run(app, name, args):
    led = app.ledger
    t = app.now_unix()
    if name == "card":
        uid = uid_arg(args)
        try:
            role = cards.role_code(args.get("role"))
        except ValueError as exc:
            refuse(C.E_BAD_REQUEST, str(exc))
        try:
            led.register(t, uid, role)
        except ValueError as exc:       # table full: nothing was written
            refuse(C.E_NO_SPACE, str(exc))
        return {"uid": uid, "role": cards.ROLES[role]}
    if name == "prices":
        bands = _bands(args.get("bands"))
        led.set_prices(t, bands)
        app.log("prices set: %r" % (bands,))
        return {"bands": bands}
    if name == "credit":            # operator credit (or debit) at the counter
        uid = uid_arg(args)
        amount = _int(args, "amount", -_U31, _U31)
        info = led.card(uid)
        if info is None:
            refuse(C.E_NOT_FOUND, "card not registered: card command first")
        if not 0 <= info[1] + amount <= app.cfg["balance_cap"]:
            refuse(C.E_BAD_REQUEST, "balance would be %d: must stay 0..%d"
                   % (info[1] + amount, app.cfg["balance_cap"]))
        return {"balance": led.topup(t, uid, amount)}
    if name == "redeem":            # a voucher sent over the link instead of scanned
        uid = uid_arg(args)
        if led.card(uid) is None:
            refuse(C.E_NOT_FOUND, "card not registered")
        data = args.get("voucher")
        try:
            if isinstance(data, str):
                data = voucher.from_text(data)
            if not isinstance(data, bytes):
                refuse(C.E_BAD_REQUEST, "voucher: the COSE_Sign1 bytes or its EKV1: text")
            return {"balance": app.redeem(data, uid)}
        except voucher.VoucherError as exc:
            refuse(exc.code, str(exc))
    if name == "balance":
        info = led.card(uid_arg(args))
        if info is None:
            refuse(C.E_NOT_FOUND, "card not registered")
        return {"role": cards.ROLES[info[0]], "balance": info[1], "today_ml": info[2]}
    if name == "balances":
        start = _int(args, "from", 0, 100000, 0)
        out = []
        for i, (uid, role, bal) in enumerate(led.cards.items()):
            if i >= start and len(out) < 24:
                out.append([uid, role, bal])
        return {"cards": out, "from": start, "more": start + len(out) < led.cards.n}
    if name == "tx_fetch":
        frm = _int(args, "from", 0, 0xFFFFFFFF, led.j.acked + 1)
        count = _int(args, "count", 1, 64, 32)
        page, n, last = led.fetch_page(frm, count)
        tail = led.j.last_seq
        # Fewer records than `count` when the page is full: the host follows `more`.
        return {"records": cbor.Raw(page), "more": (last if n else tail) < tail,
                "last": tail}
    if name == "tx_ack":
        upto = _int(args, "upto", 0, led.j.last_seq)
        led.ack(upto)
        return {"acked": upto, "unacked": led.j.pending_count()}
    if name == "reconcile":
        tot = led.totals
        tot.update(open=led.open is not None, unacked=led.j.pending_count(),
                   mismatches=led.mismatches, lost=led.lost, last=led.j.last_seq)
        return tot
    if name == "service":
        want = args.get("in_service")
        if want is not True and want is not False:
            refuse(C.E_BAD_REQUEST, "in_service: true or false")
        app.manual_out = not want
        app.log("put %s service by the operator" % ("into" if want else "out of"))
        app._save()
        app._leds()
        return {"in_service": app.in_service()}
    if name == "service_note":
        text = args.get("text")
        if not isinstance(text, str) or not 1 <= len(text) <= 120:
            refuse(C.E_BAD_REQUEST, "text: 1..120 characters")
        app.log(text)
        return {"logged": True}
    if name == "service_log":
        count = _int(args, "count", 1, 32, 10)
        j = app.service
        rows = j.read(max(j.first_seq, j.last_seq - count + 1), count, _BUDGET)
        return [[seq] + cbor.loads(p) for seq, p in rows]
    if name == "status":
        o = led.open
        return {"in_service": app.in_service(), "manual_out": app.manual_out,
                "dispensing": app.disp.active, "open": o[0] if o else None,
                "alarms": [[n, d] for n, d in app.alarms.active(app._now_s())],
                "quality": app.quality, "cards": led.cards.n, "bands": led.bands}
    refuse(C.E_BAD_REQUEST, "unknown command %r (card, prices, credit, redeem, balance, "
           "balances, tx_fetch, tx_ack, reconcile, service, service_note, service_log, "
           "status)" % (name,))
