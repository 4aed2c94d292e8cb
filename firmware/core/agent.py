# The protocol agent: one body in, the response bodies out. Transport-free (the link module
# moves bytes); state-free beyond the retransmission cache (the Device holds the state).
#
# Order for every body (SPEC 5): envelope.open_body verifies CBOR, shape, key, signature,
# role and replay; the Device persists the new replay counter; only then does a handler run.
# A handler gets a verified Message and returns (type, payload), a list of them, a finished
# body (bytes; provisioning signs with a key the Device does not hold yet), or None;
# it raises envelope.ProtoError for a request it refuses, and changes nothing when it does.
import gc
import hashlib

import catalog as C
import envelope


class Agent:
    def __init__(self, dev, max_frame):
        self.dev = dev
        self.max_frame = max_frame
        self.handlers = {}
        self.rejected = 0
        self.handled = 0
        # Set by a handler that must act once its answer is on the wire (reboot into the
        # app after provisioning, REBOOT, REPROVISION): the link calls it after sending.
        self.after_reply = None
        # Retransmission cache: the last signed request's (kid, seq, digest) and our answers,
        # so a host that lost our response and resends the same bytes gets the same answer
        # instead of "replayed" — and the command does not run twice.
        self._last = None
        self._last_answers = None
        # The answers themselves live here (signed in envelope's buffer, then copied): a
        # 1 KB answer needs no 1 KB block of a fragmented heap, and the cache is this one
        # buffer, reused by each request.
        self._cache = bytearray(max_frame + 16)

    def on(self, msg_type, handler):
        self.handlers[msg_type] = handler

    def handle(self, body):
        dev = self.dev
        try:
            msg = envelope.open_body(body, dev.keyring, dev.replay, self.max_frame)
        except envelope.ProtoError as exc:
            self.rejected += 1
            if exc.code == C.E_REPLAYED and self._last is not None \
                    and self._last[2] == hashlib.sha256(body).digest():
                if self._last_answers is None:
                    # It was accepted, then memory ran out before any answer existed.
                    return [dev.error(exc.seq, C.E_BUSY, "out of memory while answering this "
                                      "request, which was accepted and may have taken "
                                      "effect: read the state before sending it again")]
                return self._last_answers
            return [dev.error(exc.seq, exc.code, str(exc))]
        handler = self.handlers.get(msg.type)
        if handler is None:
            self.rejected += 1
            return [dev.error(msg.seq, C.E_UNKNOWN_TYPE, "no handler for type %d in state %s"
                              % (msg.type, "provisioned" if dev.provisioned else "factory"))]
        dev.accept(msg)
        if msg.kid is not None:
            # Remembered before the handler runs: if no answer can be built (out of memory),
            # the host's retry of these bytes is told so, not "replayed".
            self._last = (msg.kid, msg.seq, hashlib.sha256(body).digest())
            self._last_answers = None
        try:
            result = handler(msg)
        except envelope.ProtoError as exc:
            answers = [dev.error(msg.seq, exc.code, str(exc))]
        except MemoryError:
            answers = [dev.error(msg.seq, C.E_BUSY, "out of memory")]
        except Exception as exc:  # a handler bug must answer, not kill the link
            answers = [dev.error(msg.seq, C.E_INTERNAL, repr(exc))]
        else:
            self.handled += 1
            if isinstance(result, tuple):
                result = [result]       # _bodies empties the list as it goes
            try:
                answers = self._bodies(msg.seq, result)
            except MemoryError:
                # Building or signing the answer did not fit: say so (the request took
                # effect; the host may fetch less at a time).
                result = None
                gc.collect()
                answers = [dev.error(msg.seq, C.E_BUSY, "out of memory for the answer")]
        if msg.kid is not None:
            self._last_answers = answers
        return answers

    def _bodies(self, seq, result):
        if result is None:
            return []
        if isinstance(result, bytes):   # a body the handler built and signed itself
            return [result]
        out = []
        used = 0
        cache = self._cache
        for i in range(len(result)):
            t, p = result[i]
            result[i] = None
            p[C.K_RE] = seq
            job = self.dev.encode_body(t, p)
            p = None        # a large answer's objects go before the signature's bignums come
            body = self.dev.sign_body(job)
            job = None
            n = len(body)
            if used + n <= len(cache):
                cache[used:used + n] = body
                body = memoryview(cache)[used:used + n]
                used += n
            else:
                body = bytes(body)      # answers beyond the cache: their own copy
            out.append(body)
        return out


def refuse(code, text):
    raise envelope.ProtoError(text, code)
