"""Progress is driven from one thread per device (flash, provision, OTA campaigns): each
redraw must reach the terminal whole, never interleaved with another thread's."""
import threading
import time

from edgekit.transport.port_runner import tally
from edgekit.ui import Progress


class FakeTTY:
    def __init__(self):
        self.writes = []            # (thread, text); a flush closes one redraw

    def isatty(self):
        return True

    def write(self, text):
        self.writes.append((threading.get_ident(), text))
        time.sleep(0.0002)          # let other threads run mid-redraw if they can

    def flush(self):
        self.writes.append((threading.get_ident(), None))


def test_parallel_updates_draw_whole_blocks():
    tty = FakeTTY()
    ports = [f"port{i}" for i in range(6)]
    progress = Progress(ports, stream=tty)

    def work(port):
        for step in range(15):
            progress.update(port, "step", str(step))
    threads = [threading.Thread(target=work, args=(p,)) for p in ports]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    block = []
    for who, text in tty.writes:
        block.append(who)
        if text is None:
            assert len(set(block)) == 1, "a redraw was interleaved with another thread's"
            block = []
    assert progress.state == {p: "step 14" for p in ports}


def test_tally_counts_a_trays_results():
    assert tally([{"ok": True}, {"ok": False}, {"ok": True}]) == {"ok": 2, "failed": 1}
    assert tally([]) == {"ok": 0, "failed": 0}
