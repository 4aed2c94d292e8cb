"""The OTA sequence bound on the device (SPEC 9.1), in the real firmware in micropython behind
a pipe: a signed manifest whose sequence is 2^63-1 (terminal: no update could follow it) or
above is refused with bad_request before anything is written; 2^63-2, the largest usable
sequence, is accepted. The host would not build such manifests, so they are signed here
directly with the fleet's firmware key, as a buggy or hostile release tool would."""
import hashlib

import pytest

from edgekit import catalog as C
from edgekit.ota import manifest as man
from edgekit.ota.bundle import Bundle
from edgekit.protocol import cbor
from edgekit.testing.fleet import TEST_PASSPHRASE, keystore_fixture

from test_ota_pipe import Rig, expect_refusal, KIND

keys = keystore_fixture()


def signed_with_seq(keys, seq):
    """A firmware-signed manifest (one 4-byte file) carrying `seq`, whatever the host's own
    checks say: the map is built valid, then its sequence is replaced and it is signed."""
    m = man.build(seq=30, version="9.0.0", board="esp32", kind=KIND, runtime="1.29.0",
                  files=[{"name": "x.mpy", "size": 4, "digest": hashlib.sha256(b"abcd").digest()}],
                  issued=0, deadline=10)
    m[C.K_OTA_SEQ] = seq
    payload = cbor.dumps(m)
    b = Bundle.__new__(Bundle)          # Bundle() itself refuses such a manifest (host check)
    b.manifest_payload, b.manifest, b.payloads, b.source = payload, m, [b"abcd"], None
    b.signed = man.sign(payload, keys.signer("firmware", TEST_PASSPHRASE), 1)
    return b


@pytest.fixture
def rig(tmp_path, keys):
    r = Rig(tmp_path, keys)
    yield r
    r.dev.close()


def test_device_refuses_terminal_and_out_of_range_sequences(rig, keys):
    for seq in ((1 << 63) - 1, 1 << 63, (1 << 64) - 1):
        text = expect_refusal(rig, signed_with_seq(keys, seq), C.E_BAD_REQUEST)
        assert f"sequence number {seq} is outside 1..{man.SEQ_MAX}" in text, text
    # the largest usable sequence is taken: the device answers with the transfer's status
    status = rig.pusher(signed_with_seq(keys, man.SEQ_MAX)).offer()
    assert status[C.K_OTA_SEQ] == man.SEQ_MAX and status[C.K_STATUS] == "receiving"
