"""protocol/edgekit.cddl against the catalogue, with pycddl (cddl-rs), an RFC 8610 validator
independent of this project. What devices and hosts really send is checked against it by
hil_tests/test_protocol_cddl.py; here, what needs no device: the file parses, its type
numbers are the catalogue's, every type has its rule, and its SenML rule takes RFC 8428's
labels and nothing else."""
import cbor2
import pytest

from edgekit import catalog as C

pytest.importorskip("pycddl", reason="pycddl (pip install -e .[test]) validates the CDDL")

from edgekit.testing.cddl import Checker, rule_for  # noqa: E402 - after the skip

RESERVED = {C.DOC_KEY_CERT}     # SPEC 6: no payload defined, nothing issues one


@pytest.fixture(scope="module")
def checker():
    return Checker()


def valid(checker, rule, value):
    try:
        checker.check(rule, cbor2.dumps(value))
    except AssertionError:
        return False
    return True


def test_the_file_parses_as_a_whole(checker):
    import pycddl
    pycddl.Schema(checker.text)         # raised "parser errors" when it redefined `time`


def test_msg_type_is_exactly_the_catalogue(checker):
    accepted = {n for n in range(256) if valid(checker, "msg-type", n)}
    assert accepted == set(C.TYPE_NAMES)


def test_every_type_has_its_rule(checker):
    missing = sorted(C.TYPE_NAMES[t] for t in C.TYPE_NAMES
                     if t not in RESERVED and rule_for(t) not in checker.rules)
    assert not missing
    assert all(rule_for(t) not in checker.rules for t in RESERVED), \
        "a reserved type got a rule: take it out of RESERVED and say so in SPEC 6"


def test_senml_takes_every_rfc8428_label_and_no_other(checker):
    values = {C.SENML_BVER: 10, C.SENML_BN: "urn:dev:ek:wm-1:", C.SENML_BT: 1767225600,
              C.SENML_BU: "l", C.SENML_BV: 0.5, C.SENML_BS: 2.5, C.SENML_N: "volume",
              C.SENML_U: "l", C.SENML_V: 3.25, C.SENML_VS: "ok", C.SENML_VB: True,
              C.SENML_S: 12, C.SENML_T: -60, C.SENML_UT: 3600, C.SENML_VD: b"\x01\x02"}
    labels = set(C.SENML_NAMES)
    assert set(values) == labels
    assert valid(checker, "senml-record", values)
    # not an RFC 8428 label (beside a known one: cddl-rs 0.6 lets a map whose entries are all
    # optional through when none of its keys is known)
    assert not valid(checker, "senml-record", {C.SENML_N: "volume", 9: 1})
    assert not valid(checker, "senml-record", {C.SENML_VD: "text"})   # vd is a byte string


def test_a_closed_map_refuses_an_unknown_key(checker):
    event = {C.K_NAME: "leak", C.K_ACTIVE: True, C.K_DURATION: 0, C.K_LEVEL: 2,
             C.K_TIME: -30, C.K_FROM: 4}
    assert valid(checker, "event", event)
    assert not valid(checker, "event", {**event, C.K_UPTO: 4})
    assert not valid(checker, "event", {k: v for k, v in event.items() if k != C.K_FROM})


def test_manifest_bounds(checker):
    f = {C.K_NAME: "app.mpy", C.K_SIZE: 10, C.K_DIGEST: bytes(32)}
    m = {C.K_OTA_SEQ: 2, C.K_VERSION: "1.0.1", C.K_BOARD: "esp32", C.K_KIND: "water_meter",
         C.K_RUNTIME: "1.29.0", C.K_POLICY: "test-confirm", C.K_DEADLINE: 30,
         C.K_ISSUED: 1767225600, C.K_SIZE: 10, C.K_FILES: [f]}
    assert valid(checker, "ota-manifest", m)
    assert valid(checker, "ota-manifest", {**m, C.K_OTA_SEQ: 2 ** 63 - 2})
    assert not valid(checker, "ota-manifest", {**m, C.K_OTA_SEQ: 2 ** 63 - 1})   # terminal
    assert not valid(checker, "ota-manifest", {**m, C.K_FILES: [f] * (C.OTA_FILES_MAX + 1)})
    assert not valid(checker, "ota-manifest", {**m, C.K_FILES: []})
    assert not valid(checker, "ota-manifest", {**m, C.K_DEADLINE: 5})
