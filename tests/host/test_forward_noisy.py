"""monitor's store-and-forward on a link that loses long answers: after a lost fetch it asks
for fewer records at a time (8, 4, 2, 1) and drains the journal anyway, each record stored
once and acknowledged; a link that loses even one-record answers is given up (LinkError)."""
import pytest

from edgekit import catalog as C
from edgekit.errors import LinkError
from edgekit.operate.forward import Forwarder
from edgekit.protocol import messages
from edgekit.registry.db import Registry

T = 1796169600


class NoisyDevice:
    """A device whose answers longer than `fits` records never arrive."""

    def __init__(self, pending, fits):
        self.journal = list(range(1, pending + 1))      # journal seqs not yet acknowledged
        self.fits = fits
        self.asked = []
        self.seq = 0

    def _msg(self, mtype, payload):
        self.seq += 1
        return messages.Message(mtype, self.seq, "wm-1", payload)

    def request(self, mtype, payload, expect=None, **kw):
        count = payload.get(C.K_COUNT, 32)
        self.asked.append(count)
        if mtype == C.EVENT_FETCH:
            return self._msg(C.EVENTS, {C.K_RECORDS: [], C.K_MORE: False})
        rows = [[s, [{C.SENML_BN: "urn:dev:ek:wm-1:", C.SENML_BT: T + s, C.SENML_N: "v",
                      C.SENML_V: s}]] for s in self.journal[:count]]
        if len(rows) > self.fits:
            raise LinkError("no answer from the device after 3 attempts of 5.0 s")
        return self._msg(C.TELEMETRY, {C.K_RECORDS: rows,
                                       C.K_MORE: len(self.journal) > len(rows)})

    def build(self, mtype, payload):
        return None, (mtype, payload)

    def exchange(self, seq, body, expect=None):
        mtype, payload = body
        self.journal = [s for s in self.journal if s > payload[C.K_UPTO]]
        return self._msg(C.ACK, {C.K_UPTO: payload[C.K_UPTO], C.K_COUNT: len(self.journal)})


def _forwarder(tmp_path, device):
    reg = Registry(tmp_path / "r.sqlite")
    reg.upsert_device("wm-1", kind="water_meter")
    return reg, Forwarder(device, reg, "wm-1", ack=True, show=lambda *a: None)


def test_a_lossy_link_is_drained_in_smaller_fetches(tmp_path):
    device = NoisyDevice(pending=50, fits=3)
    reg, fwd = _forwarder(tmp_path, device)
    fwd.catch_up()
    assert device.journal == []                             # everything acknowledged
    stored = reg._db.execute("SELECT journal_seq FROM telemetry WHERE device_id='wm-1' "
                             "ORDER BY journal_seq").fetchall()
    assert [r[0] for r in stored] == list(range(1, 51))     # each record once
    # events (32, empty), then telemetry: 32 lost, 8 lost, 4 lost, 2 arrives, and 2 from then on
    assert device.asked[:6] == [32, 32, 8, 4, 2, 2] and set(device.asked[4:]) == {2}


def test_a_link_that_loses_even_one_record_is_given_up(tmp_path):
    device = NoisyDevice(pending=5, fits=0)
    _, fwd = _forwarder(tmp_path, device)
    with pytest.raises(LinkError):
        fwd.catch_up()
    assert device.asked[-1] == 1 and device.journal == [1, 2, 3, 4, 5]   # nothing lost
