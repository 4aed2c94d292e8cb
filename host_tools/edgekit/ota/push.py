"""The host's OTA transfer engine (SPEC 9.2-9.6) on an open Session with a provisioned device.

    pusher = Pusher(session, bundle, device_public_key, progress=print)
    pusher.offer()          # manifest (in parts), every device check; what it already holds
    pusher.transfer()       # windowed chunks, cumulative + selective acks, resends only gaps
    pusher.install()        # switch; the device reboots into its trial
    pusher.wait_result()    # the device-signed update result once the trial is decided

The window and chunk size come from the device (CAPS / OTA_STATUS). Chunks are unsigned and
numbered by a counter of this transfer (their seq is not a key's replay counter: SPEC 4.2).
"""
import hashlib
import time
from collections import OrderedDict, deque

from edgekit import catalog as C
from edgekit.errors import EdgekitError, LinkError, ProtocolError
from edgekit.ota.bundle import Bundle
from edgekit.protocol import cbor, cose, messages

_OFFER_OVERHEAD = 200        # COSE header, signature and offer fields around the first part
_MIN_RTO = 1.0
_MAX_BACKOFF = 8


class PushError(EdgekitError):
    """The update did not go through; the message says at which step and what to do."""


def add_range(ranges, s, e):
    out = []
    for a, b in sorted([list(r) for r in ranges] + [[s, e]]):
        if out and a <= out[-1][1]:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return out


def cut_range(ranges, s, e):
    out = []
    for a, b in ranges:
        if b <= s or a >= e:
            out.append([a, b])
            continue
        if a < s:
            out.append([a, s])
        if b > e:
            out.append([e, b])
    return out


def gaps(ranges, total):
    out, pos = [], 0
    for a, b in sorted(ranges):
        if a > pos:
            out.append((pos, a))
        pos = max(pos, b)
    if pos < total:
        out.append((pos, total))
    return out


def held_bytes(ranges):
    return sum(b - a for a, b in ranges)


def chunk_overhead(seq_max, offset_max, data_len):
    """Body bytes of an OTA_CHUNK around `data_len` bytes, at the largest field values."""
    probe = messages.unsigned(C.OTA_CHUNK, (1 << 64) - 1,
                              {C.K_OTA_SEQ: seq_max, C.K_OFFSET: offset_max,
                               C.K_DATA: bytes(data_len)})
    return len(probe) - data_len


class Pusher:
    def __init__(self, session, bundle: Bundle, device_public_key: bytes,
                 progress=None, window=None):
        if bundle.signed is None:
            raise PushError("the bundle is not signed: run `edgekit ota sign` first")
        self.s = session
        self.bundle = bundle
        self.device_key = bytes(device_public_key)
        self.stream = bundle.stream()
        self.total = len(self.stream)
        self.digest = hashlib.sha256(bundle.signed).digest()
        self.progress = progress or (lambda event: None)
        self.window_override = window
        self.stall_s = 30.0
        self.held = []
        self.status = None
        self.stats = {"stream_bytes": self.total, "sent_bytes": 0, "resent_bytes": 0,
                      "new_bytes": 0, "chunks": 0, "digest_mismatches": 0, "seconds": 0.0,
                      "held_at_start": 0}
        self._seq = 0

    # -- offer --------------------------------------------------------------------------
    def offer(self, timeout=5.0):
        # 5 s: the device verifies two signatures and signs its answer, about 1.5 s on an
        # ESP32 (SPEC 4.2 asks hosts to allow 2 s per device signature).
        signed = self.bundle.signed
        first = max(64, self.s.max_frame - _OFFER_OVERHEAD)
        msg = self.s.request(C.OTA_OFFER, {C.K_DIGEST: self.digest, C.K_SIZE: len(signed),
                                           C.K_MANIFEST: signed[:first]}, timeout=timeout)
        while msg.type in (C.OTA_STATUS, C.OTA_CHUNK_ACK) and \
                msg.payload.get(C.K_STATUS) != "receiving" and \
                msg.payload.get(C.K_STATUS) != "staged":
            off = msg.payload.get(C.K_OFFSET)
            if not isinstance(off, int) or not 0 < off < len(signed):
                raise ProtocolError(f"device answered the manifest with offset {off!r}")
            part = signed[off:off + self.s.max_frame - 120]
            seq = self._next()
            body = messages.unsigned(C.OTA_CHUNK, seq, {C.K_DIGEST: self.digest,
                                                        C.K_OFFSET: off, C.K_DATA: part})
            msg = self.s.exchange(seq, body, timeout=timeout)
        if msg.type != C.OTA_STATUS or msg.role != C.ROLE_DEVICE:
            raise ProtocolError("the device's OTA_STATUS is not signed by its key")
        p = msg.payload
        if p.get(C.K_OTA_SEQ) != self.bundle.seq or p.get(C.K_SIZE) != self.total:
            raise ProtocolError(f"device accepted another update (seq {p.get(C.K_OTA_SEQ)}, "
                                f"{p.get(C.K_SIZE)} bytes) than this bundle")
        self.status = p
        self.held = [list(r) for r in p.get(C.K_RANGES, [])]
        self.stats["held_at_start"] = held_bytes(self.held)
        self.progress({"event": "offered", "seq": self.bundle.seq, "total": self.total,
                       "held": held_bytes(self.held), "files_held": len(p.get(C.K_FILES, []))})
        return p

    def _next(self):
        self._seq += 1
        return self._seq

    # -- transfer -----------------------------------------------------------------------
    def transfer(self, stop_after=None, rounds=4):
        """Send every missing byte; returns the stats. `stop_after` (bytes held) stops early,
        as an unplugged cable would (tests)."""
        if self.status is None:
            self.offer()
        for _ in range(rounds):
            staged = self._round(stop_after)
            if staged or (stop_after is not None and held_bytes(self.held) >= stop_after):
                return self.stats
            if not gaps(self.held, self.total):
                return self.stats     # all here; the device finishes its checks at install
            self.offer()          # ask the device what it holds, then send the rest
            if self.status.get(C.K_STATUS) == "staged":
                return self.stats
        raise PushError(f"the transfer did not complete after {rounds} rounds "
                        f"({held_bytes(self.held)} of {self.total} bytes held): check the "
                        "link and push again (it resumes)")

    def _round(self, stop_after):
        p = self.status
        window = self.window_override or max(1, int(p.get(C.K_WINDOW) or 1))
        max_frame = min(self.s.max_frame, int(p.get(C.K_MAX_FRAME) or self.s.max_frame))
        room = max_frame - chunk_overhead(self.bundle.seq, self.total, max_frame)
        if self.status.get(C.K_STATUS) == "staged":
            return True
        queue = deque()
        for a, b in gaps(self.held, self.total):
            for s in range(a, b, room):
                queue.append((s, min(b, s + room)))
        inflight = OrderedDict()          # seq -> (start, end, sent at)
        staged = False
        rto = max(_MIN_RTO, 4.0 * window * max_frame / 11520.0)
        backoff = 1
        t0 = last_report = last_progress = time.monotonic()
        acked_at = []
        while queue or inflight:
            if time.monotonic() - last_progress > self.stall_s:
                raise LinkError(f"the transfer stalled: no chunk acknowledged for "
                                f"{self.stall_s:.0f} s ({held_bytes(self.held)} of "
                                f"{self.total} bytes held); check the link and push again "
                                "(it resumes)")
            if stop_after is not None and held_bytes(self.held) >= stop_after:
                return False
            while queue and len(inflight) < window:
                s, e = queue.popleft()
                if any(a <= s and e <= b for a, b in self.held):
                    continue
                seq = self._next()
                body = messages.unsigned(C.OTA_CHUNK, seq, {
                    C.K_OTA_SEQ: self.bundle.seq, C.K_OFFSET: s, C.K_DATA: self.stream[s:e]})
                self.s.send_body(body)
                inflight[seq] = (s, e, time.monotonic())
                self.stats["chunks"] += 1
                self.stats["sent_bytes"] += e - s
            msg = self.s.receive(timeout=0.05)
            now = time.monotonic()
            if msg is None:
                expired = False
                for seq, (s, e, at) in list(inflight.items()):
                    if now - at > rto * backoff:    # lost chunk or lost ack: send it again
                        del inflight[seq]
                        queue.appendleft((s, e))
                        self.stats["resent_bytes"] += e - s
                        expired = True
                if expired:
                    # Nothing acknowledged for a whole timeout: the peer may be gone (a
                    # network outage, a power cut). Resend ever more slowly until an ack
                    # comes (RFC 6298 5.5), not a window every second for the outage.
                    backoff = min(backoff * 2, _MAX_BACKOFF)
                continue
            seq = msg.payload.get(C.K_RE)
            if msg.type not in (C.OTA_CHUNK_ACK, C.ERROR) or seq not in inflight:
                continue                          # a late answer, or an event
            s, e, _ = inflight.pop(seq)
            last_progress = now
            backoff = 1
            before = held_bytes(self.held)
            self._merge_ack(msg.payload)
            if msg.type == C.ERROR:
                self._chunk_error(msg.payload, s, e, queue, room)
            self.stats["new_bytes"] += max(0, held_bytes(self.held) - before)
            acked_at.append(now)
            # Frames arrive in order: an earlier chunk the device reports missing was lost.
            frontier = self._frontier(msg.payload)
            for older, (os_, oe, _) in list(inflight.items()):
                if older < seq and oe <= frontier and \
                        not any(a <= os_ and oe <= b for a, b in self.held):
                    del inflight[older]
                    queue.appendleft((os_, oe))
                    self.stats["resent_bytes"] += oe - os_
            if msg.payload.get(C.K_STATUS) == "staged":
                staged = True
            if len(acked_at) > 8:
                gap = (acked_at[-1] - acked_at[-9]) / 8
                rto = max(_MIN_RTO, 4 * (window + 1) * gap)
            if now - last_report >= 0.5:
                last_report = now
                self._report(t0, now)
        self.stats["seconds"] += time.monotonic() - t0
        self._report(t0, time.monotonic(), final=True)
        return staged

    def _merge_ack(self, p):
        cum = p.get(C.K_OFFSET)
        if isinstance(cum, int) and cum > 0:
            self.held = add_range(self.held, 0, cum)
        for r in p.get(C.K_RANGES, []) or []:
            if isinstance(r, list) and len(r) == 2 and 0 <= r[0] < r[1] <= self.total:
                self.held = add_range(self.held, r[0], r[1])

    def _frontier(self, p):
        ends = [p.get(C.K_OFFSET) or 0] + [r[1] for r in p.get(C.K_RANGES, []) or []
                                           if isinstance(r, list) and len(r) == 2]
        return max(ends)

    def _chunk_error(self, p, s, e, queue, room):
        code = p.get(C.K_CODE)
        if code == C.E_BUSY:                 # out of memory for a moment: send it again
            self.stats["busy"] = self.stats.get("busy", 0) + 1
            if self.stats["busy"] > 50:
                raise PushError("the device keeps answering busy (out of memory): reboot it "
                                "and push again (the transfer resumes)")
            queue.append((s, e))
            time.sleep(0.05)
            return
        if code != C.E_DIGEST_MISMATCH:
            raise ProtocolError(f"device refused a chunk: {C.error_name(code)}: "
                                f"{p.get(C.K_MSG, '')}", code)
        self.stats["digest_mismatches"] += 1
        self.progress({"event": "digest_mismatch", "detail": p.get(C.K_MSG, "")})
        if self.stats["digest_mismatches"] > 2:
            raise PushError(f"the device rejected a file 3 times: {p.get(C.K_MSG)}; the "
                            "bundle or the link corrupts data; check `edgekit ota inspect`")
        for f in self.bundle.files:          # the file(s) this chunk completed were dropped
            if f["start"] < e and s < f["end"]:
                self.held = cut_range(self.held, f["start"], f["end"])
                for a in range(f["start"], f["end"], room):     # in chunks that fit a frame
                    queue.append((a, min(f["end"], a + room)))

    def _report(self, t0, now, final=False):
        held = held_bytes(self.held)
        elapsed = max(1e-6, now - t0)
        rate = self.stats["new_bytes"] / elapsed
        left = self.total - held
        self.progress({"event": "done" if final else "progress", "held": held,
                       "total": self.total, "sent": self.stats["sent_bytes"],
                       "rate": rate, "eta_s": left / rate if rate > 0 else None,
                       "elapsed_s": elapsed})

    # -- install and result -------------------------------------------------------------
    def install(self, timeout=20.0, attempts=5):
        """Switch the device to the staged update; it answers, then reboots into the trial.
        A lost answer is not a failure: the device may already be running its trial, so it
        is asked (a resent OTA_INSTALL after that reboot would be a replay)."""
        request = {C.K_OTA_SEQ: self.bundle.seq, C.K_DIGEST: self.digest}
        for attempt in range(attempts):
            try:
                ack = self.s.request(C.OTA_INSTALL, request, timeout=timeout, expect=C.ACK)
            except ProtocolError as exc:
                if exc.code == C.E_BUSY and attempt < attempts - 1:
                    time.sleep(0.5)           # out of memory for a moment: try again
                    continue
                if exc.code != C.E_REPLAYED:
                    raise
            except LinkError:
                pass
            else:
                self.progress({"event": "installed", "slot": ack.payload.get(C.K_SLOT)})
                return ack.payload
            break
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                self.s.hello(timeout=1.0)
                result = self.fetch_result()
            except (LinkError, ProtocolError):
                time.sleep(0.2)
                continue
            if result["seq"] == self.bundle.seq and result["status"] != "rejected":
                self.progress({"event": "installed", "slot": None})
                return {C.K_STATUS: result["status"]}
            break
        raise PushError("the device did not confirm the install; fetch its update result "
                        "(`edgekit ota push --result-only`) before pushing again")

    def fetch_result(self, timeout=10.0):
        return fetch_result(self.s, self.device_key, timeout)

    def wait_result(self, timeout=None, poll=0.5):
        """After install: HELLO until the device is back, then fetch the result until the
        trial is decided (installed or rolled back)."""
        deadline = time.monotonic() + (timeout or self.bundle.manifest[C.K_DEADLINE] + 30)
        last = None
        while time.monotonic() < deadline:
            try:
                self.s.hello(timeout=1.0)
                result = self.fetch_result()
                last = result
                if result["status"] != "pending" and result["seq"] == self.bundle.seq:
                    self.progress(dict(result, event="result"))
                    return result
            except (LinkError, ProtocolError) as exc:
                last = exc
            time.sleep(poll)
        raise PushError(f"no final update result within the trial deadline (last: {last}); "
                        "fetch it later with `edgekit ota push --result-only`")

    def run(self, install=True):
        self.offer()
        self.transfer()
        if not install:
            return {"status": "staged"}
        try:
            self.install()
        except ProtocolError as exc:
            if exc.code not in (C.E_INVALID_STATE, C.E_DIGEST_MISMATCH):
                raise
            self.offer()                  # a file failed its last check: resend just that
            self.transfer()
            self.install()
        return self.wait_result()


def fetch_result(session, device_public_key, timeout=10.0) -> dict:
    """The device's signed update result (SPEC 9.6), verified."""
    msg = session.request(C.OTA_RESULT_FETCH, {}, timeout=timeout, expect=C.OTA_RESULT)
    return open_result(msg.payload.get(C.K_RESULT), device_public_key)


def open_result(doc, device_public_key) -> dict:
    """The fields of a DOC_UPDATE_RESULT signed by the device key (SPEC 9.6)."""
    try:
        sign1 = cose.decode_sign1(doc)
        sign1.verify(device_public_key)
        p = cbor.loads(sign1.payload)
    except (cose.CoseError, cbor.CBORError, TypeError):
        raise ProtocolError("the update result is not signed by the device's key") from None
    if sign1.protected.get(C.HDR_TYPE) != C.DOC_UPDATE_RESULT:
        raise ProtocolError("the update result document has the wrong type")
    return {"device_id": p.get(C.K_DEVICE_ID), "status": p.get(C.K_STATUS),
            "reason": p.get(C.K_MSG), "seq": p.get(C.K_OTA_SEQ),
            "version": p.get(C.K_VERSION), "running": p.get(C.K_FW),
            "code": p.get(C.K_CODE), "doc_seq": sign1.protected.get(C.HDR_SEQ)}
