# The device's OTA agent (SPEC 9): offer (manifest assembly and every check before any
# payload moves), chunks, install, abort, update result; and the trial: health checks, then
# confirmation, or a reset that makes the next boot roll back.
#
# Chunk acknowledgements are unsigned (SPEC 4.2): a device signature costs about half a
# second on an ESP32, which would stall a transfer that moves a frame every 90 ms.
import hashlib
import os
import sys

from micropython import const

import catalog as C
import cbor
import ed25519
import envelope
import ota_manifest
import ota_transfer
import otaslots
from agent import refuse
from store import StoreError

# A chunk's data, an offer's manifest part: bytes, or a view of the network's receive buffer
# (envelope.open_body).
_BYTES = (bytes, memoryview)

_TICK_MS = const(1000)
_IDLE_PERSIST_MS = const(1000)
_STATUS_RANGES = const(48)      # OTA_STATUS stays within a 1024-byte frame
def _free_bytes(root):
    try:
        s = os.statvfs(root or "/")
        return s[0] * s[4]
    except (OSError, AttributeError):
        return None


class Ota:
    def __init__(self, rt):
        self.rt = rt
        self._ticking = False
        self.dev = rt.dev
        self.root = rt.hal.storage_root().rstrip("/")
        self.tx = None
        self.rejected = None
        self._m = None          # manifest being assembled: [digest, size, bytes held]
        self._last_rx = rt.hal.ticks_ms()
        self._doc = None        # signed result document, cached for this boot
        self.broken = None
        try:
            self.slots = otaslots.Slots(self.root)
        except StoreError as exc:   # both copies of the OTA state damaged: refuse updates
            self.slots = None
            self.broken = "OTA state unreadable (%s); reflash the device" % exc
            return
        tx = self.slots.st.load("tx")
        if tx and tx.get("slot") == self.slots.active:
            self.slots.st.delete("tx")     # the install committed; its cleanup did not
        try:
            import build_info
            rt.fw_version = build_info.VERSION
        except (ImportError, AttributeError):
            pass
        self.trial_started = None
        if self.slots.trial and self.slots.boot.get("run"):
            self.trial_started = rt.hal.ticks_ms()
            # Sensors answer now, not a sampling period from now (SPEC 9.5).
            for t in rt.sched.tasks:
                if t.critical:
                    t.due = self.trial_started
            self._wake()

    def _wake(self):
        # The tick runs only while a transfer or a trial needs it: an idle device must not
        # wake every second (battery life; and a simulated day would take minutes).
        if not self._ticking:
            self._ticking = True
            self.rt.sched.every("ota", _TICK_MS, self.tick)

    # -- helpers --------------------------------------------------------------------------
    def _unsigned(self, msg_type, payload):
        return envelope.unsigned(msg_type, self.dev.next_seq(), payload)

    def _uerror(self, seq, code, text, extra=None):
        p = {C.K_RE: seq, C.K_CODE: code, C.K_MSG: text}
        if extra:
            p.update(extra)
        return self._unsigned(C.ERROR, p)

    def _ready(self):
        if self.slots is None:
            refuse(C.E_STORAGE, self.broken)

    # -- offer ----------------------------------------------------------------------------
    def offer(self, msg):
        self._ready()
        p = msg.payload
        digest = p.get(C.K_DIGEST)
        size = p.get(C.K_SIZE)
        part = p.get(C.K_MANIFEST)
        if not isinstance(digest, bytes) or len(digest) != 32 or not isinstance(part, _BYTES):
            refuse(C.E_BAD_REQUEST, "offer needs the manifest digest and its first part")
        if not isinstance(size, int) or not len(part) <= size <= C.OTA_MANIFEST_MAX:
            refuse(C.E_TOO_LARGE, "manifest size must be 1..%d bytes" % C.OTA_MANIFEST_MAX)
        self.slots.take_work()[ota_manifest.HEAD:ota_manifest.HEAD + len(part)] = part
        self._m = [digest, size, len(part)]
        if len(part) == size:
            return self._accept()
        return self._unsigned(C.OTA_STATUS, {C.K_RE: msg.seq, C.K_STATUS: "manifest",
                                             C.K_OFFSET: len(part)})

    def _manifest_part(self, msg):
        p = msg.payload
        m = self._m
        off = p.get(C.K_OFFSET)
        data = p.get(C.K_DATA)
        if m is None and self.tx is not None and p.get(C.K_DIGEST) == self.tx.digest:
            return C.OTA_STATUS, self._status()     # its answer was lost: the same again
        if m is None or p.get(C.K_DIGEST) != m[0]:
            return self._uerror(msg.seq, C.E_INVALID_STATE,
                                "no offer of that manifest is open: send OTA_OFFER again")
        if not isinstance(data, _BYTES) or off != m[2] or off + len(data) > m[1]:
            return self._unsigned(C.OTA_CHUNK_ACK, {C.K_RE: msg.seq, C.K_OFFSET: m[2]})
        at = ota_manifest.HEAD + off
        self.slots.take_work()[at:at + len(data)] = data
        m[2] += len(data)
        if m[2] < m[1]:
            return self._unsigned(C.OTA_CHUNK_ACK, {C.K_RE: msg.seq, C.K_OFFSET: m[2]})
        return self._accept()

    def _accept(self):
        digest, size, _ = self._m
        self._m = None
        info = {}
        try:
            files = self._verify(digest, size, info)
        except envelope.ProtoError as exc:
            info.update(status="rejected", msg=str(exc), code=exc.code)
            self.rejected = info
            self._doc = None
            raise
        self.rejected = None
        self._doc = None
        return self._begin(digest, info, files)

    def _verify(self, digest, size, info):
        buf = self.slots.take_work()
        mv = memoryview(buf)
        if hashlib.sha256(mv[ota_manifest.HEAD:ota_manifest.HEAD + size]).digest() != digest:
            refuse(C.E_BAD_REQUEST, "manifest bytes do not match the offered digest")
        try:
            ps, pe, p0, p1, sig_at = ota_manifest.split_sign1(buf, size)
            protected = cbor.loads(mv[ps:pe])
            if not isinstance(protected, dict) or protected.get(C.COSE_ALG) != C.ALG_EDDSA:
                raise ValueError("protected header: EdDSA expected")
        except (ValueError, IndexError) as exc:
            refuse(C.E_BAD_REQUEST, "manifest is not a COSE_Sign1: %s" % exc)
        if protected.get(C.HDR_TYPE) != C.DOC_OTA_MANIFEST:
            refuse(C.E_BAD_REQUEST, "the offered document is not an OTA manifest")
        known = self.dev.keyring.lookup(protected.get(C.COSE_KID))
        if known is None:
            refuse(C.E_UNKNOWN_KEY, "manifest signed by a key this device does not trust "
                                    "(unknown or revoked firmware key)")
        if known[1] != C.ROLE_FIRMWARE:
            refuse(C.E_UNAUTHORIZED, "manifest signed by a %s key: only the firmware key "
                                     "signs manifests" % known[1])
        sig = bytes(mv[sig_at:sig_at + 64])
        start = ota_manifest.sig_structure_in_place(buf, ps, pe)
        if not ed25519.verify(known[0], mv[start:p1], sig):
            refuse(C.E_BAD_SIGNATURE, "manifest signature does not verify: it was altered "
                                      "after signing")
        try:
            m = cbor.loads(mv[p0:p1])
        except ValueError as exc:
            refuse(C.E_BAD_REQUEST, "manifest payload: %s" % exc)
        files = ota_manifest.manifest_files(m)
        seq = m[C.K_OTA_SEQ]
        info["seq"] = seq
        info["ver"] = m[C.K_VERSION]
        info["dl"] = m[C.K_DEADLINE]
        rt = self.rt
        if m[C.K_BOARD] != rt.hal.NAME or m[C.K_KIND] != self.dev.kind:
            refuse(C.E_WRONG_TARGET, "update is for %s/%s, this device is %s/%s"
                   % (m[C.K_BOARD], m[C.K_KIND], rt.hal.NAME, self.dev.kind))
        have = tuple(sys.implementation.version[:3])
        if ota_manifest.version(m[C.K_RUNTIME]) > have:
            refuse(C.E_WRONG_TARGET, "update needs MicroPython %s, this device runs %d.%d.%d"
                   % ((m[C.K_RUNTIME],) + have))
        slots = self.slots
        if seq <= slots.floor:
            refuse(C.E_ROLLBACK, "update sequence %d is not above the installed %d "
                                 "(downgrade or replay)" % (seq, slots.floor))
        if slots.trial:
            refuse(C.E_INVALID_STATE, "version %s is in its trial: wait for it to confirm "
                                      "or roll back" % slots.boot.get("ver"))
        staging = slots.staging()
        need = 0
        temp = 0
        for name, size, _, enc, xsize in files:
            if not slots.has_final(staging, name, size):
                need += size
            if enc is not None and xsize > temp:
                temp = xsize
        free = _free_bytes(self.root)
        if free is not None and need + temp > free:
            refuse(C.E_NO_SPACE, "update needs %d bytes of flash, %d are free"
                   % (need + temp, free))
        return files

    def _begin(self, digest, info, files):
        slots = self.slots
        tx = self.tx
        if tx is None or tx.digest != digest or tx.slot != slots.staging():
            if tx is not None:
                tx.close()
            self.tx = None
            self.tx = ota_transfer.open_transfer(slots, digest, info["seq"], info["ver"],
                                          info["dl"], files)
        return C.OTA_STATUS, self._status()

    def _status(self):
        tx = self.tx
        return {C.K_OTA_SEQ: tx.seq, C.K_STATUS: "staged" if tx.complete() else "receiving",
                C.K_SIZE: tx.total, C.K_RANGES: tx.ranges[:_STATUS_RANGES],
                C.K_FILES: tx.held_files(), C.K_MAX_FRAME: self.rt.max_frame,
                C.K_WINDOW: self.rt.window}

    # -- chunks ---------------------------------------------------------------------------
    def chunk(self, msg):
        p = msg.payload
        if C.K_DIGEST in p:
            return self._manifest_part(msg)
        tx = self.tx
        if tx is None:
            return self._uerror(msg.seq, C.E_INVALID_STATE,
                                "no transfer in progress: send OTA_OFFER first")
        off = p.get(C.K_OFFSET)
        data = p.get(C.K_DATA)
        if p.get(C.K_OTA_SEQ) != tx.seq or not isinstance(off, int) or off < 0 or \
                not isinstance(data, _BYTES) or not data or off + len(data) > tx.total:
            return self._uerror(msg.seq, C.E_BAD_REQUEST,
                                "chunk does not belong to update %d (or lies outside its "
                                "%d-byte stream)" % (tx.seq, tx.total))
        self._last_rx = self.rt.hal.ticks_ms()
        self._wake()
        failure = tx.chunk(off, data)
        ack = {C.K_RE: msg.seq, C.K_OFFSET: tx.cumulative(), C.K_RANGES: tx.above()}
        if failure is not None:
            return self._uerror(msg.seq, C.E_DIGEST_MISMATCH, failure, ack)
        if tx.complete():
            ack[C.K_STATUS] = "staged"
        return self._unsigned(C.OTA_CHUNK_ACK, ack)

    # -- install, abort, result -------------------------------------------------------------
    def install(self, msg):
        self._ready()
        tx = self.tx
        p = msg.payload
        if tx is None:
            refuse(C.E_INVALID_STATE, "nothing staged in this boot: offer the update (its "
                                      "transfer resumes) before installing")
        if p.get(C.K_OTA_SEQ) != tx.seq or p.get(C.K_DIGEST) != tx.digest:
            refuse(C.E_BAD_REQUEST, "install names another update than the staged %d"
                   % tx.seq)
        if tx.missing():
            refuse(C.E_INVALID_STATE, "transfer incomplete: %d bytes missing" % tx.missing())
        reason = tx.install()
        if reason is not None:
            refuse(C.E_DIGEST_MISMATCH, reason)
        self.tx = None
        self._doc = None
        self.rt.agent.after_reply = lambda: self.rt.hal.reset("ota_install")   # then the trial
        return C.ACK, {C.K_SLOT: self.slots.active, C.K_STATUS: "rebooting"}

    def abort(self, msg):
        self._ready()
        slots = self.slots
        if slots.trial:
            slots.give_up("version %s: rolled back by the operator during its trial"
                          % slots.boot.get("ver"))
            self.rt.agent.after_reply = lambda: self.rt.hal.reset("ota_abort")
            return C.ACK, {C.K_STATUS: "rolling_back"}
        if self.tx is not None:
            self.tx.close()
            self.tx = None
        self._m = None
        slots.st.delete("tx")
        slots.clear(slots.staging())
        return C.ACK, {C.K_STATUS: "aborted"}

    def result(self, msg):
        if self._doc is None:
            r = self.slots.result() if self.slots else {"status": "none", "msg": self.broken}
            if self.rejected and r["status"] != "pending":   # an undecided trial comes first
                r = self.rejected
            dev = self.dev
            p = {C.K_DEVICE_ID: dev.device_id, C.K_STATUS: r["status"],
                 C.K_MSG: r.get("msg") or "", C.K_FW: self.rt.fw_version}
            if r.get("seq") is not None:
                p[C.K_OTA_SEQ] = r["seq"]
            if r.get("ver"):
                p[C.K_VERSION] = r["ver"]
            if r.get("code"):
                p[C.K_CODE] = r["code"]
            ident = dev.identity
            self._doc = envelope.signed(C.DOC_UPDATE_RESULT, p, ident["seed"], ident["pub"],
                                        dev.next_seq(), ident["id"])
        return C.OTA_RESULT, {C.K_RESULT: self._doc}

    # -- background: idle persistence, trial health ------------------------------------------
    def tick(self):
        hal = self.rt.hal
        now = hal.ticks_ms()
        tx = self.tx
        if tx is not None and hal.ticks_diff(now, self._last_rx) >= _IDLE_PERSIST_MS:
            tx.retry()
            if tx.dirty:
                tx.persist()
        if self.trial_started is not None:
            self._trial(now)
        if (self.tx is None or not self.tx.dirty) and self.trial_started is None:
            self.rt.sched.cancel("ota")
            self._ticking = False

    def health(self):
        """None when healthy, else what is still missing (SPEC 9.5)."""
        rt = self.rt
        if not rt.agent.handled:
            return "no verified message from the host yet"
        for t in rt.sched.tasks:
            if t.critical and (t.fails or not t.runs):
                return "task %s has not run cleanly" % t.name
        app = rt.app
        if app is not None and hasattr(app, "health"):
            return app.health()
        return None

    def _trial(self, now):
        hal = self.rt.hal
        missing = self.health()
        ver = self.slots.boot.get("ver")
        if missing is None:
            self.trial_started = None
            self._doc = None
            self.slots.confirm("version %s confirmed: health checks passed on its trial "
                               "boot" % ver)
            self.rt.log("OTA: version %s confirmed" % ver, 2)
            return
        limit = self.slots.boot.get("dl") or 120
        if hal.ticks_diff(now, self.trial_started) >= limit * 1000:
            self.trial_started = None
            self.slots.give_up("version %s failed its health checks within %d s (%s): "
                               "rolled back" % (ver, limit, missing))
            hal.reset("ota_rollback")


def install(rt):
    """Attach OTA to the runtime: handlers (provisioned devices only) and the trial."""
    ota = Ota(rt)
    rt.ota = ota
    a = rt.agent
    hello = a.handlers.get(C.HELLO)
    if hello is not None:
        def hello_trial(msg):
            t, p = hello(msg)
            if ota.slots is not None and ota.slots.trial:
                p[C.K_STATE] = "trial"
            return t, p
        a.on(C.HELLO, hello_trial)
    if not rt.dev.provisioned:
        return ota
    if ota.slots is not None:
        ota.slots.take_work()       # at boot, while the heap is in one piece
    a.on(C.OTA_OFFER, ota.offer)
    a.on(C.OTA_CHUNK, ota.chunk)
    a.on(C.OTA_INSTALL, ota.install)
    a.on(C.OTA_ABORT, ota.abort)
    a.on(C.OTA_RESULT_FETCH, ota.result)
    return ota
