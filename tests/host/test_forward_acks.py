"""monitor --ack acknowledges pages together (operate/forward.py, ACK_EVERY): a backlog is
walked with a cursor, stored page by page, and acknowledged every ACK_EVERY pages and at the
end, never past what is stored. Each acknowledgement is a signed exchange and a flash write
on the device; one per page was as many exchanges as the fetches."""
from edgekit import catalog as C
from edgekit.operate.forward import ACK_EVERY, Forwarder
from edgekit.protocol import messages
from edgekit.registry.db import Registry

T = 1796169600


class PagedDevice:
    """A journal answering `count`/`from` fetches in pages of `page` records."""

    def __init__(self, pending, page):
        self.journal = list(range(1, pending + 1))
        self.acked = 0
        self.page = page
        self.acks = []
        self.seq = 0

    def _msg(self, mtype, payload):
        self.seq += 1
        return messages.Message(mtype, self.seq, "wm-1", payload)

    def request(self, mtype, payload, expect=None, **kw):
        if mtype == C.EVENT_FETCH:
            return self._msg(C.EVENTS, {C.K_RECORDS: [], C.K_MORE: False})
        frm = payload.get(C.K_FROM, self.acked + 1)
        rows = [s for s in self.journal if s >= frm][:self.page]
        return self._msg(C.TELEMETRY, {
            C.K_RECORDS: [[s, [{C.SENML_BN: "urn:dev:ek:wm-1:", C.SENML_BT: T + s,
                                C.SENML_N: "v", C.SENML_V: s}]] for s in rows],
            C.K_MORE: bool(rows) and rows[-1] < self.journal[-1]})

    def build(self, mtype, payload):
        return None, (mtype, payload)

    def exchange(self, seq, body, expect=None):
        _, payload = body
        self.acks.append(payload[C.K_UPTO])
        self.acked = payload[C.K_UPTO]
        return self._msg(C.ACK, {C.K_UPTO: self.acked, C.K_COUNT: 0})


def test_a_backlog_is_acknowledged_every_ack_every_pages_and_at_the_end(tmp_path):
    device = PagedDevice(pending=50, page=3)          # 17 pages
    reg = Registry(tmp_path / "r.sqlite")
    reg.upsert_device("wm-1", kind="water_meter")
    stored_at_ack = []
    fwd = Forwarder(device, reg, "wm-1", ack=True, show=lambda *a: None,
                    on_ack=lambda j, upto, left: stored_at_ack.append(
                        reg._db.execute("SELECT max(journal_seq) FROM telemetry").fetchone()[0]))
    fwd.catch_up()
    assert device.acks == [3 * ACK_EVERY, 6 * ACK_EVERY, 50]
    assert stored_at_ack == device.acks               # never past what is stored
    got = [r[0] for r in reg._db.execute("SELECT DISTINCT journal_seq FROM telemetry "
                                         "ORDER BY journal_seq")]
    assert got == list(range(1, 51))


def test_watching_walks_the_same_pages_and_acknowledges_nothing(tmp_path):
    device = PagedDevice(pending=20, page=6)
    reg = Registry(tmp_path / "r.sqlite")
    reg.upsert_device("wm-1", kind="water_meter")
    Forwarder(device, reg, "wm-1", ack=False, show=lambda *a: None).catch_up()
    assert device.acks == []
    assert reg._db.execute("SELECT count(DISTINCT journal_seq) FROM telemetry").fetchone()[0] == 20
