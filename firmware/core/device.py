# The device's identity and protocol state, on crash-safe storage:
#   identity  {id, seed, pub, kind, site, fleet}      written once, at provisioning
#   cert      the fleet-signed device certificate (COSE_Sign1 bytes)
#   anchors   {fleet: [pub], firmware: [pub..], operator: [pub..], epoch, revoked: [kid..]}
#   config    the app's configuration (validated against its schema)
#   replay    {kid: last accepted seq} per trusted key (SPEC 5)
#   seq       {"reserved": n} upper bound of the device's own sequence numbers
# identity+cert+anchors+config are committed together (store.commit): a device is either
# factory-fresh or fully provisioned, never half.
import catalog as C
import cbor
import envelope
import store as store_mod

FW_VERSION = "1.0.0"
_SEQ_BLOCK = 1024       # SPEC 5: one flash write per 1024 messages
PROVISION_RECORDS = ("identity", "cert", "anchors", "config")
# Read-only requests: replaying one discloses nothing new and changes nothing, so their
# replay state is kept in RAM and persisted with the next state-changing message (saves a
# flash write per read; docs/flash-wear.md).
READ_ONLY = (C.CONFIG_GET, C.TELEMETRY_FETCH, C.EVENT_FETCH, C.LOG_FETCH, C.OTA_RESULT_FETCH)
# COMMANDs that only read, by name: the core's, and the app's READ_ONLY_COMMANDS (runtime).
# Their replay state waits in RAM too: a `read` cost a replay-counter save on top of what
# the command itself writes (docs/flash-wear.md).
READ_ONLY_COMMANDS = ("diag",)
# Types whose handler saves the replay counter in one commit with what it changes
# (commit_with_replay): KEY_EPOCH, whose epoch number alone already refuses a replay.
_COMMITS_REPLAY = (C.KEY_EPOCH,)


def open_store(hal):
    return store_mod.Store(hal.storage_root().rstrip("/") + "/ek", encode=cbor.dumps,
                           decode=cbor.loads)


class Device:
    def __init__(self, hal, store=None):
        self.hal = hal
        self.board = hal.BOARD
        self.store = store or open_store(hal)
        self.identity = None
        self.cert = None
        self.config = {}
        self.keyring = envelope.Keyring()
        self.epoch = 0
        self.replay = {}
        self._replay_dirty = False
        self.read_only_commands = READ_ONLY_COMMANDS
        self._seq = 0
        self._seq_bound = 0
        # Room to sign the largest answer, taken now while the heap is in one piece.
        envelope.reserve(self.board.get("max_frame", C.MAX_FRAME_DEFAULT) + 16)
        self.load()

    # -- state ------------------------------------------------------------------------------
    def load(self):
        s = self.store
        identity = s.load("identity")
        cert = s.load("cert")
        anchors = s.load("anchors")
        config = s.load("config")
        if identity and cert and anchors is not None and config is not None:
            self.identity, self.cert, self.config = identity, cert, config
            self._load_anchors(anchors)
        else:
            self.identity, self.cert, self.config = None, None, {}
        self.replay = s.load("replay", {}) or {}
        reserved = (s.load("seq", {}) or {}).get("reserved", 0)
        self._seq = reserved
        self._seq_bound = reserved

    def _load_anchors(self, anchors):
        ring = envelope.Keyring()
        for role in (C.ROLE_FLEET, C.ROLE_FIRMWARE, C.ROLE_OPERATOR):
            for pub in anchors.get(role, ()):
                ring.add(pub, role)
        ring.revoked = list(anchors.get("revoked", ()))
        self.keyring = ring
        self.epoch = anchors.get("epoch", 0)
        self.anchors = anchors

    @property
    def provisioned(self):
        return self.identity is not None

    @property
    def device_id(self):
        return self.identity["id"] if self.identity else None

    @property
    def kind(self):
        return self.identity["kind"] if self.identity else None

    # -- sequence numbers -------------------------------------------------------------------
    def next_seq(self):
        self._seq += 1
        if self._seq > self._seq_bound:
            # Reserve a block before using it: after a power cut we restart at the bound,
            # never reusing a number the host may have seen.
            self._seq_bound = self._seq + _SEQ_BLOCK
            self.store.save("seq", {"reserved": self._seq_bound})
        return self._seq

    # -- replay -----------------------------------------------------------------------------
    def accept(self, msg):
        """Record msg's seq as the last accepted from its key: persisted BEFORE the caller acts
        on a state-changing message (SPEC 5)."""
        if msg.kid is None:
            return
        self.replay[msg.kid] = msg.seq
        if msg.type in READ_ONLY or msg.type in _COMMITS_REPLAY or (msg.type == C.COMMAND and
                                     msg.payload.get(C.K_NAME) in self.read_only_commands):
            self._replay_dirty = True
        else:
            self.store.save("replay", self.replay)
            self._replay_dirty = False

    def commit_with_replay(self, records):
        """Save `records` and the replay state as one commit (all or none survive a cut)."""
        records["replay"] = self.replay
        self.store.commit(records)
        self._replay_dirty = False

    # -- outgoing ---------------------------------------------------------------------------
    def body(self, msg_type, payload):
        """A body from this device: signed once provisioned, else unsigned (listed types)."""
        view = self.body_view(msg_type, payload)
        return view if isinstance(view, bytes) else bytes(view)

    def body_view(self, msg_type, payload):
        """body() as a view of the signing buffer, valid until the next body is signed: for
        sending at once, or copying (the agent's answer cache), without a 1 KB allocation."""
        return self.sign_body(self.encode_body(msg_type, payload))

    def encode_body(self, msg_type, payload):
        """body_view in two steps, so that the caller can drop the payload before the
        signature is computed: encode_body -> job, then sign_body(job) -> view."""
        seq = self.next_seq()
        if self.identity:
            return envelope.encode_signed(envelope.scratch(), msg_type, payload,
                                          self.identity["pub"], seq, self.identity["id"])
        return envelope.unsigned(msg_type, seq, payload)

    def sign_body(self, job):
        if isinstance(job, bytes):      # unsigned: already whole
            return job
        return envelope.sign_encoded(job, self.identity["seed"], self.identity["pub"])

    def reply(self, request_seq, msg_type, payload):
        payload[C.K_RE] = request_seq
        return self.body(msg_type, payload)

    def error(self, request_seq, code, text):
        return self.reply(request_seq, C.ERROR, {C.K_CODE: code, C.K_MSG: text})
