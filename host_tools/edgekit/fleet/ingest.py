"""What the fleet service does with one MQTT message, transport-free: verify it against the
registry's device key, refuse replays, store what it carries, and return the signed bodies
to publish on the device's down-topic (SPEC 13.3).

Order per message, as on the serial path (SPEC 5, 8.3; operate/forward.py): the topic names
a registered device -> the body opens with that device's key (signature, role) and names
that device as sender -> its seq is above the last one the registry accepted (persisted) ->
store in one transaction (registry/telemetry.py) -> only then the operator-signed ack.
A message refused at any step changes nothing and is counted under the reason, never stored.
"""
import sys
import time

from edgekit import catalog as C
from edgekit.errors import EdgekitError, ProtocolError, StoreUnavailable
from edgekit.fleet import topics
from edgekit.operate import forward
from edgekit.protocol import messages
from edgekit.registry import telemetry as store

# Reasons a message is dropped (the keys of Ingest.dropped, shown by `fleet serve`).
DROP_REASONS = ("bad_topic", "unknown_device", "unsigned", "wrong_sender", "replayed",
                "bad_signature", "unknown_key", "unauthorized", "bad_cbor", "malformed")
# The OTA transfer's unsigned answers (SPEC 13.7), for the operator tool pushing the update.
_OTA_TRANSFER = (C.OTA_CHUNK_ACK, C.OTA_STATUS, C.ERROR)


class Ingest:
    """`handle(topic, payload)` -> [(topic, body)] to publish. `signer` and `next_seq` sign
    the operator's answers (acks, fetches); `on_alarm(device_id, event row)` is told about
    each newly stored event that sets or clears an alarm."""

    def __init__(self, registry, signer, next_seq, on_alarm=None, sender="host"):
        self.registry = registry
        self.signer = signer
        self.next_seq = next_seq
        self.on_alarm = on_alarm
        self.sender = sender
        self.dropped = dict.fromkeys(DROP_REASONS, 0)
        self.counts = {"received": 0, "accepted": 0, "records_stored": 0, "events_stored": 0,
                       "acks_sent": 0, "answers": 0, "ota_transfer": 0}
        self.last_device_error = None
        self.pending = {}       # device id -> records left on it, as its last ACK said
        self._last_ack = {}     # device id -> (seq, type, payload) of our last ack to it
        self._rings = {}        # device id -> (public key, Keyring), rebuilt if the key changes

    # -- verification -----------------------------------------------------------------
    def _drop(self, reason):
        self.dropped[reason] = self.dropped.get(reason, 0) + 1
        return []

    def _keyring(self, device_id):
        row = self.registry.get(device_id)
        if row is None or not row.get("public_key") or row.get("status") in ("lost", "retired"):
            return None
        pub = bytes(row["public_key"])
        cached = self._rings.get(device_id)
        if cached is None or cached[0] != pub:
            ring = messages.Keyring()
            ring.add(pub, C.ROLE_DEVICE)
            cached = self._rings[device_id] = (pub, ring)
        return cached[1]

    def open(self, topic, payload):
        """The verified Message, or (None, reason)."""
        device_id = topics.device_of_up(topic)
        if device_id is None:
            return None, "bad_topic"
        ring = self._keyring(device_id)
        if ring is None:
            return None, "unknown_device"
        try:
            msg = messages.open_body(bytes(payload), ring)
        except ProtocolError as exc:
            name = C.error_name(exc.code)
            return None, name if name in self.dropped else "malformed"
        if not msg.signed:
            if msg.type in _OTA_TRANSFER:
                return None, "ota_transfer"     # an `ota push --via fleet` reads these
            return None, "unsigned"     # SPEC 13.2: nothing unsigned crosses a broker
        if msg.sender != device_id:
            return None, "wrong_sender"
        seen = self.registry.touch(device_id, msg.seq)     # persisted before anything is stored
        if not seen:
            return None, "replayed"
        return msg, device_id

    # -- handling ---------------------------------------------------------------------
    def handle(self, topic, payload):
        self.counts["received"] += 1
        try:
            return self._handle(topic, payload)
        except StoreUnavailable as exc:
            # The store is down or full (a database restart): this message is neither stored
            # nor acknowledged, so the device sends it again; the service keeps running.
            self.counts["store_unavailable"] = self.counts.get("store_unavailable", 0) + 1
            print(f"fleet: {exc}", file=sys.stderr, flush=True)
            return []

    def _handle(self, topic, payload):
        msg, who = self.open(topic, payload)
        if msg is None and who == "ota_transfer":
            self.counts["ota_transfer"] += 1    # counted, not a refusal: nothing to store
            return []
        if msg is None:
            return self._drop(who)
        self.counts["accepted"] += 1
        try:
            if msg.type == C.TELEMETRY:
                return self._journal(who, msg, "telemetry")
            if msg.type == C.EVENTS:
                return self._journal(who, msg, "events")
            if msg.type == C.EVENT:
                return self._event(who, msg)
        except StoreUnavailable:
            raise
        except EdgekitError:
            # A record this host cannot store (malformed seq): nothing stored, nothing acked.
            return self._drop("malformed")
        self.counts["answers"] += 1     # ACK of our ack, COMMAND_RESULT, ERROR, ...
        if msg.type == C.ACK and isinstance(msg.payload.get(C.K_COUNT), int):
            self.pending[who] = msg.payload[C.K_COUNT]
        if msg.type == C.ERROR:
            resend = self._resign(who, msg.payload)
            if resend:
                return resend
            # The device refused something we sent (an ack it cannot apply, a replay):
            # worth a line, its records stay on the device and come again.
            self.counts["device_errors"] = self.counts.get("device_errors", 0) + 1
            self.last_device_error = (who, msg.payload)
            print(f"fleet: {who} refused request #{msg.payload.get(C.K_RE)}: "
                  f"{C.error_name(msg.payload.get(C.K_CODE))}: {msg.payload.get(C.K_MSG, '')}",
                  file=sys.stderr, flush=True)
        return []

    def _sign(self, msg_type, payload):
        return messages.signed(msg_type, payload, self.signer, self.next_seq(), self.sender)

    def _ack_body(self, device_id, msg_type, payload):
        seq = self.next_seq()
        self._last_ack[device_id] = (seq, msg_type, payload)
        self.counts["acks_sent"] += 1
        return messages.signed(msg_type, payload, self.signer, seq, self.sender)

    def _resign(self, device_id, error):
        """Our ack was refused as replayed: another operator message (a technician's command,
        another worker) reached the device first with a higher seq. The same ack, signed
        again with a fresh seq, once (the device's next push is acked anyway)."""
        last = self._last_ack.get(device_id)
        if last is None or error.get(C.K_CODE) != C.E_REPLAYED or error.get(C.K_RE) != last[0]:
            return []
        del self._last_ack[device_id]
        self.counts["acks_resigned"] = self.counts.get("acks_resigned", 0) + 1
        body = messages.signed(last[1], last[2], self.signer, self.next_seq(), self.sender)
        return [(topics.down(device_id), body)]

    def _journal(self, device_id, msg, journal):
        """A telemetry push or fetch answer, or an events answer: store, then ack its upto
        (a push starts at the device's first unacknowledged record, SPEC 8.3)."""
        fetch, _, ack = forward.JOURNALS[journal]
        rows = forward.rows_of(msg.payload)
        packs = rows if journal == "telemetry" else ()
        events = rows if journal == "events" else ()
        stored, evs = store.store(self.registry, device_id, packs, events, received=time.time())
        forward.crash_point(f"{journal}-stored")
        self.counts["records_stored"] += sum(1 for r in stored if r["new"])
        self._new_events(device_id, evs)
        out = []
        if rows:
            out.append((topics.down(device_id),
                        self._ack_body(device_id, ack, {C.K_UPTO: rows[-1][0]})))
            if msg.payload.get(C.K_MORE):
                out.append((topics.down(device_id), self._sign(fetch, {})))
        return out

    def _event(self, device_id, msg):
        """A pushed event: stored at once (an alarm is news), acknowledged through a fetch of
        the event journal, whose answer (EVENTS) is acked by its upto, never by this K_FROM."""
        seq = msg.payload.get(C.K_FROM)
        if not isinstance(seq, int):
            return self._drop("malformed")
        _, evs = store.store(self.registry, device_id, (), [(seq, msg.payload)],
                             received=time.time())
        self._new_events(device_id, evs)
        return [(topics.down(device_id), self._sign(C.EVENT_FETCH, {}))]

    def _new_events(self, device_id, rows):
        for row in rows:
            if row["new"]:
                self.counts["events_stored"] += 1
                if row["active"] is not None and self.on_alarm is not None:
                    self.on_alarm(device_id, row)

    def stats(self):
        return {"counts": dict(self.counts), "dropped": dict(self.dropped)}
