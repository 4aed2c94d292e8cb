"""The alarm webhook: POSTs leave in the order the alarms were stored, one sender, even when
the receiver is slow on the first (a thread per POST let a CLEARED overtake its SET)."""
import io
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from edgekit.fleet.service import AlarmSink


def _row(seq, active):
    return {"name": "burst", "active": active, "time": None, "journal_seq": seq,
            "received_at": "now"}


def test_webhook_posts_keep_the_order_of_the_alarms():
    got = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self):       # noqa: N802 - the http.server name
            doc = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            if doc["journal_seq"] == 1:
                time.sleep(0.3)         # slow on the first: a second POST may not pass it
            got.append((doc["journal_seq"], doc["active"]))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        log = io.StringIO()
        sink = AlarmSink(f"http://127.0.0.1:{server.server_port}/", out=log)
        for seq, active in ((1, True), (2, False), (3, True), (4, False)):
            sink("wm-1", _row(seq, active))
        end = time.monotonic() + 10
        while len(got) < 4 and time.monotonic() < end:
            time.sleep(0.02)
        assert got == [(1, True), (2, False), (3, True), (4, False)]
        assert sink.sent == 4 and sink.failures == 0
        assert log.getvalue().splitlines()[1].startswith("ALARM CLEARED wm-1 burst")
    finally:
        server.shutdown()
