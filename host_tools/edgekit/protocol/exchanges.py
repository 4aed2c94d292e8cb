"""Which answer belongs to which request (SPEC 6-10): the host's one table of the protocol's
exchanges, so a client never guesses what came back.

    answers_to(C.COMMAND)               -> (C.COMMAND_RESULT,)
    check_answer(C.COMMAND, msg)        -> msg, or ProtocolError naming both types

Session.exchange checks every answer it matches by K_RE against this table (ERROR, the
generic refusal, is raised before: it may answer any request). A caller's `expect` can
narrow the table's answers, never widen them. tests/host/test_exchanges.py holds the table
against the firmware's handlers, so a request the device learns is a request the host knows.
"""
from edgekit import catalog as C
from edgekit.errors import ProtocolError
from edgekit.protocol import cbor, cose


class Exchange:
    """One request type and the answer types a device may send for it."""
    __slots__ = ("request", "answers", "why")

    def __init__(self, request, answers, why):
        self.request, self.answers, self.why = request, tuple(answers), why

    def __repr__(self):
        return (f"Exchange({C.type_name(self.request)} -> "
                f"{' | '.join(C.type_name(t) for t in self.answers)})")


EXCHANGES = (
    Exchange(C.HELLO, [C.CAPS], "any state; unsigned; CAPS is signed once provisioned"),
    Exchange(C.PROV_BEGIN, [C.PROV_KEY], "factory state; PROV_KEY signed by the new key"),
    Exchange(C.PROV_COMMIT, [C.PROV_DONE], "certificate, config, anchors committed at once"),
    Exchange(C.REPROVISION, [C.ACK], "operator-signed; back to factory state"),
    Exchange(C.CONFIG_GET, [C.CONFIG], "the app's settings"),
    Exchange(C.CONFIG_SET, [C.ACK], "operator-signed; ACK carries the settings now in force"),
    Exchange(C.TELEMETRY_FETCH, [C.TELEMETRY], "journaled SenML records from K_FROM"),
    Exchange(C.TELEMETRY_ACK, [C.ACK], "records up to K_UPTO may leave the journal"),
    Exchange(C.EVENT_FETCH, [C.EVENTS], "journaled events from K_FROM"),
    Exchange(C.EVENT_ACK, [C.ACK], "events up to K_UPTO may leave the journal"),
    Exchange(C.COMMAND, [C.COMMAND_RESULT], "operator-signed app command (apps.md)"),
    Exchange(C.TIME_SYNC, [C.TIME], "operator-signed; TIME is the clock after setting"),
    Exchange(C.LOG_FETCH, [C.LOG], "the device's log journal"),
    Exchange(C.REBOOT, [C.ACK], "operator-signed; the ACK goes out, then the reset"),
    Exchange(C.KEY_EPOCH, [C.ACK], "fleet-signed key rotation; ACK carries the epoch"),
    Exchange(C.OTA_OFFER, [C.OTA_STATUS], "a manifest larger than one frame: status "
                                          "'manifest' with the offset to send next"),
    Exchange(C.OTA_CHUNK, [C.OTA_CHUNK_ACK, C.OTA_STATUS],
             "unsigned; a chunk of the manifest ends with OTA_STATUS once it is whole"),
    Exchange(C.OTA_INSTALL, [C.ACK], "operator-signed; switch slots, then reset"),
    Exchange(C.OTA_ABORT, [C.ACK], "operator-signed"),
    Exchange(C.OTA_RESULT_FETCH, [C.OTA_RESULT], "the device-signed update-result record"),
)

BY_REQUEST = {e.request: e for e in EXCHANGES}


def answers_to(request_type) -> tuple:
    """The answer types a device may send for `request_type`; ProtocolError if it is none
    of the protocol's requests."""
    exchange = BY_REQUEST.get(request_type)
    if exchange is None:
        raise ProtocolError(f"{_name(request_type)} is not a request of this protocol (no "
                            "answer is defined for it): send one of "
                            + ", ".join(C.type_name(t) for t in BY_REQUEST))
    return exchange.answers


def narrow(request_type, expect=None) -> tuple:
    """The answers to accept: the table's, or the caller's `expect` (a type or a tuple)
    if it is among them; an `expect` outside the table is a bug in the caller."""
    allowed = answers_to(request_type)
    if expect is None:
        return allowed
    wanted = tuple(expect) if isinstance(expect, (tuple, list, set, frozenset)) else (expect,)
    stray = [t for t in wanted if t not in allowed]
    if stray:
        raise ValueError(f"{_name(request_type)} is never answered with "
                         f"{', '.join(_name(t) for t in stray)} (protocol/exchanges.py)")
    return wanted


def check_answer(request_type, msg, expect=None):
    """`msg` if its type answers `request_type` (within `expect`); else a ProtocolError that
    names the request, the answer and what was due."""
    allowed = narrow(request_type, expect)
    if msg.type not in allowed:
        raise ProtocolError(
            f"the device answered {_name(request_type)} with {_name(msg.type)}, expected "
            f"{' or '.join(_name(t) for t in allowed)}: its firmware speaks another version "
            "of the protocol, or the link mixed up two conversations; update the firmware "
            "or the host so they match, then retry")
    return msg


def type_of(body: bytes) -> int:
    """The message type of a body this host built (signed COSE_Sign1, or unsigned
    [type, seq, payload]); the link never hands us bodies to trust here."""
    item = cbor.loads(body)
    if isinstance(item, (list, tuple)) and len(item) == 3 and isinstance(item[0], int):
        return item[0]
    return cose.decode_sign1(body).protected[C.HDR_TYPE]


def _name(msg_type):
    if isinstance(msg_type, int):
        return f"{C.type_name(msg_type)} (0x{msg_type:02x})"
    return repr(msg_type)
