"""Check CBOR against protocol/edgekit.cddl, and capture what really crosses a link.

`Tap` wraps a transport: every byte the host writes and reads goes through a frame decoder
of its own, so what is checked is the wire, not what the session made of it. `Checker`
validates a payload with pycddl (cddl-rs), an implementation of RFC 8610 independent of
this project; pycddl validates against the first rule of a schema, so each rule gets its own
schema text: `root = <rule>` followed by the whole file.
"""
import re

import cbor2

from edgekit import catalog as C
from edgekit import paths
from edgekit.protocol import framing


def cddl_text():
    return (paths.PROTOCOL_DIR / "edgekit.cddl").read_text()


def rule_for(msg_type):
    """The CDDL rule of a message or document type: PROV_BEGIN -> prov-begin, DOC_OTA_MANIFEST ->
    ota-manifest (a document's payload rule), TIME -> time-reply (`time` is a prelude
    type of RFC 8610 and cannot be redefined); SPEC section 6."""
    name = C.TYPE_NAMES.get(msg_type)
    if name is None:
        raise AssertionError(f"type 0x{msg_type:02x} is not in the catalogue")
    if name == "TIME":
        return "time-reply"
    if name.startswith("DOC_"):
        name = name[4:]
    return name.lower().replace("_", "-")


class Checker:
    def __init__(self, text=None):
        import pycddl
        self._pycddl = pycddl
        self.text = text if text is not None else cddl_text()
        self.rules = set(re.findall(r"^([A-Za-z][\w-]*)\s*=", self.text, re.M))
        # cddl-rs 0.6 applies a `.cbor` control inside an array to every element of that
        # array, so the envelope's shape is checked with `bstr .cbor X` read as `bstr`, and
        # each embedded item (protected header, payload) against X on its own.
        self.shape_text = re.sub(r"bstr \.cbor [\w-]+", "bstr", self.text)
        self._schemas = {}

    def schema(self, rule, text=None):
        if rule not in self.rules:
            raise AssertionError(f"edgekit.cddl has no rule `{rule}`")
        key = (rule, text is None)
        if key not in self._schemas:
            self._schemas[key] = self._pycddl.Schema(f"root = {rule}\n" + (text or self.text))
        return self._schemas[key]

    def check(self, rule, data: bytes, shape_only=False):
        """Raise (with the validator's words) unless `data` (CBOR) matches `rule`."""
        try:
            self.schema(rule, self.shape_text if shape_only else None).validate_cbor(data)
        except self._pycddl.ValidationError as exc:
            raise AssertionError(f"{rule}: {exc}\n  value: {cbor2.loads(data)!r}") from None

    def check_signed(self, data: bytes, payload_rule):
        """A COSE_Sign1 body: its shape, its protected header, its payload."""
        self.check("signed-body", data, shape_only=True)
        item = cbor2.loads(data)
        item = item.value if isinstance(item, cbor2.CBORTag) else item
        self.check("protected-header", item[0])
        self.check(payload_rule, item[2])


class Captured:
    """One frame body seen on the wire: direction ('host' or 'device'), type, payload bytes.
    A body that is no envelope at all (a test sending garbage on purpose) has type None."""

    def __init__(self, direction, body):
        self.direction = direction
        self.body = body
        self.type = self.protected = self.payload = self.value = None
        self.signed = False
        item = cbor2.loads(body)
        if isinstance(item, cbor2.CBORTag) and item.tag == C.TAG_COSE_SIGN1:
            item = item.value
        if not isinstance(item, list) or len(item) not in (3, 4):
            return
        if len(item) == 4:
            self.signed = True
            self.protected = item[0]
            self.type = cbor2.loads(item[0])[C.HDR_TYPE]
            self.payload = item[2]
        else:
            self.type = item[0]
            self.payload = cbor2.dumps(item[2])     # the map itself, re-encoded as it came
        self.value = cbor2.loads(self.payload)


class Tap:
    """A transport that records each frame body in both directions."""

    def __init__(self, inner, log):
        self.inner = inner
        self.log = log
        self._out = framing.FrameDecoder(C.MAX_FRAME_LIMIT)
        self._in = framing.FrameDecoder(C.MAX_FRAME_LIMIT)

    def _record(self, decoder, direction, data):
        for body in decoder.feed(data):
            if isinstance(body, bytes):
                self.log.append(Captured(direction, body))

    def write(self, data):
        self._record(self._out, "host", data)
        return self.inner.write(data)

    def read(self, timeout):
        data = self.inner.read(timeout)
        if data:
            self._record(self._in, "device", data)
        return data

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.inner.close()


class TapTarget:
    """A HIL target whose every transport is tapped into `log`."""

    def __init__(self, target, log):
        self._target = target
        self.log = log

    def transport(self):
        return Tap(self._target.transport(), self.log)

    def __getattr__(self, name):
        return getattr(self._target, name)
