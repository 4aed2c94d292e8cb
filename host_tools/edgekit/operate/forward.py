"""Store and forward, host side: journaled telemetry and events go into the registry, and only
then, as the gateway (`--ack`), is the device told it may delete them.

Order per batch (a fetch answer or a push): verify (the session did) -> store in one
transaction (registry/telemetry.py) -> show -> acknowledge. A cut anywhere loses nothing:
before the ack the device still holds the records and sends them again, and the registry
keeps each (device, journal seq, record) once. An acknowledgement covers a record only if
everything before it was stored too: pushed telemetry starts at the device's first
unacknowledged record (SPEC 8.3), and a pushed event is acknowledged through a fetch of the
event journal from its first unacknowledged record, never by its own seq.
"""
import os
import sys

from edgekit import catalog as C
from edgekit.errors import LinkError
from edgekit.protocol import messages
from edgekit.registry import telemetry as store

# Test hook: the process exits hard (no cleanup, like a power cut of the host) at the named
# point, so a test can check that nothing is lost or stored twice. Points, per journal
# (telemetry-..., events-...): -stored (committed, no ack sent), -ack-sent (the ack is on the
# wire, its answer not read: the device may or may not have trimmed), -acked (answered).
CRASH_ENV = "EDGEKIT_TEST_CRASH_AT"
CRASH_STATUS = 70

SMALL_FETCH = 8             # records per fetch after a fetch's answer was lost
ACK_EVERY = 8               # pages stored between two acknowledgements while draining
JOURNALS = {
    "telemetry": (C.TELEMETRY_FETCH, C.TELEMETRY, C.TELEMETRY_ACK),
    "events": (C.EVENT_FETCH, C.EVENTS, C.EVENT_ACK),
}


def crash_point(name):
    if os.environ.get(CRASH_ENV) == name:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(CRASH_STATUS)


def rows_of(payload):
    """The [seq, record] rows of a TELEMETRY/EVENTS payload (anything else is skipped)."""
    rows = payload.get(C.K_RECORDS)
    return [r for r in rows if isinstance(r, list) and len(r) == 2] \
        if isinstance(rows, list) else []


class Forwarder:
    """One device's journals into one registry. `show(msg, rows, events)` is called after
    each store with the verified message and the stored rows this run had not shown yet;
    `shown` outlives a reconnect, so a batch sent again is shown once."""

    def __init__(self, session, registry, device_id, ack, show, on_ack=None):
        self.session = session
        self.on_ack = on_ack    # (journal, upto, records left on the device) after each ack
        self.registry = registry
        self.device_id = device_id
        self.ack = ack
        self.show = show
        self.shown = set()

    def catch_up(self):
        """Everything the device journaled while nobody listened: alarms first."""
        self.drain("events")
        self.drain("telemetry")

    def drain(self, journal):
        """Fetch, store (and with --ack acknowledge) until the device has no more. Pages
        are fetched from a cursor and acknowledged together, every ACK_EVERY pages and at
        the end: each acknowledgement is a signed exchange and a flash write on the device
        (its journal's state), and one per page cost as much time as the fetches did."""
        fetch, answer_type, _ = JOURNALS[journal]
        cursor, count = None, None
        stored, pages = None, 0         # the last stored seq not yet acknowledged
        while True:
            # The first request has no `from`: acking, the device starts at its first
            # unacknowledged record; watching, at its oldest.
            request = {} if cursor is None else {C.K_FROM: cursor}
            if count is not None:
                request[C.K_COUNT] = count
            try:
                answer = self.session.request(fetch, request, expect=answer_type)
            except LinkError:
                # On a noisy link a long answer rarely arrives whole (0.2% of bytes damaged:
                # a 1 KB answer one time in eight): ask for fewer records at a time, down to
                # one, before giving the link up.
                if count == 1:
                    raise
                count = max(1, (count or SMALL_FETCH * 2) // 2)
                continue
            rows = rows_of(answer.payload)
            self._take(journal, answer, rows, ack=False)
            more = bool(rows) and answer.payload.get(C.K_MORE)
            if rows:
                stored, pages = rows[-1][0], pages + 1
            if self.ack and stored is not None and (not more or pages % ACK_EVERY == 0):
                self._ack(journal, stored)
                stored = None
            if not more:
                return
            cursor = rows[-1][0] + 1

    def on_message(self, msg):
        """A message the device pushed (no request of ours): store what it carries."""
        if msg.type == C.TELEMETRY:
            rows = rows_of(msg.payload)
            self._take("telemetry", msg, rows)
            if rows and msg.payload.get(C.K_MORE):
                self.drain("telemetry")
        elif msg.type == C.EVENT and isinstance(msg.payload.get(C.K_FROM), int):
            self._take("events", msg, [[msg.payload[C.K_FROM], msg.payload]], ack=False)
            if self.ack:
                self.drain("events")
        else:
            self.registry.touch(self.device_id, msg.seq)
            self.show(msg, [], [])

    def _take(self, journal, msg, rows, ack=None):
        self.registry.touch(self.device_id, msg.seq)
        packs = rows if journal == "telemetry" else ()
        events = rows if journal == "events" else ()
        stored_rows, stored_events = store.store(self.registry, self.device_id, packs, events)
        crash_point(f"{journal}-stored")
        fresh = [r[0] for r in rows if (journal, r[0]) not in self.shown]
        self.shown.update((journal, r[0]) for r in rows)
        if fresh:
            self._show(msg, rows, fresh, stored_rows, stored_events)
        if rows and (self.ack if ack is None else ack):
            self._ack(journal, rows[-1][0])

    def _ack(self, journal, upto):
        _, _, ack_type = JOURNALS[journal]
        seq, body = self.session.build(ack_type, {C.K_UPTO: upto})
        if os.environ.get(CRASH_ENV) == f"{journal}-ack-sent":
            self.session.send_body(body)    # on the wire; whether the device trims is open
            crash_point(f"{journal}-ack-sent")
        answer = self.session.exchange(seq, body, expect=C.ACK)
        crash_point(f"{journal}-acked")
        if self.on_ack is not None:
            self.on_ack(journal, upto, answer.payload.get(C.K_COUNT))

    def _show(self, msg, rows, fresh, stored_rows, stored_events):
        keep = set(fresh)
        if msg.type == C.TELEMETRY:
            payload = dict(msg.payload)
            payload[C.K_RECORDS] = [r for r in rows if r[0] in keep]
            self.show(messages.Message(msg.type, msg.seq, msg.sender, payload, role=msg.role),
                      [r for r in stored_rows if r["journal_seq"] in keep], [])
            return
        for (seq, payload), row in zip(rows, stored_events):
            if seq not in keep:
                continue
            one = msg
            if msg.type != C.EVENT:
                # An EVENTS row is shown as the EVENT it was when pushed (as before).
                one = messages.Message(C.EVENT, msg.seq, msg.sender, dict(payload),
                                       role=msg.role)
                one.payload.setdefault(C.K_FROM, seq)
            self.show(one, [], [row])
