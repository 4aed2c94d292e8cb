"""What the OTA-over-the-network HIL tests share (not a test module): a signed bundle for a
kind, waiting for a board's first connection to the broker, and `edgekit ota push --via
fleet` run as a user runs it (a process, its JSON lines read as they come)."""
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from edgekit.cli import main as edgekit
from edgekit.keys.store import KeyStore
from edgekit.ota import bundle as bundle_mod
from edgekit.ota.sign import sign_with_keystore
from operator_cli import PASS


def signed_bundle(home, version, seq, app_only=False, kind="water_meter", deadline=30):
    b = bundle_mod.build("esp32", kind, version, seq=seq, app_only=app_only,
                         deadline=deadline)
    return sign_with_keystore(b, KeyStore(Path(home) / "keys"), PASS)


def wait_connected(board, capsys, limit_s=30):
    end = time.monotonic() + limit_s
    while time.monotonic() < end:
        assert edgekit(["command", board.url, "diag", "--json"]) == 0
        if json.loads(capsys.readouterr().out)["result"]["net"]["connected"]:
            return
        time.sleep(0.5)
    raise AssertionError("the board did not connect to the broker")


class CliPush:
    """`edgekit ota push --via fleet` as a user runs it: a process, JSON lines on stdout."""

    def __init__(self, device_id, bundle_path, broker, *extra):
        env = dict(os.environ)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "edgekit.cli", "ota", "push", "--via", "fleet", device_id,
             str(bundle_path), "--broker", broker.url, "--json", "--timeout", "5",
             *extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        self.events = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for line in self.proc.stdout:
            self.events.append(json.loads(line))

    def wait_event(self, pred, what, limit_s=120):
        end = time.monotonic() + limit_s
        while time.monotonic() < end:
            for e in list(self.events):
                if pred(e):
                    return e
            if self.proc.poll() is not None and not self._reader.is_alive():
                break
            time.sleep(0.05)
        raise AssertionError(f"no {what}: {self.events[-3:]} {self.stderr()}")

    def held_over(self, fraction):
        return lambda e: e["event"] == "progress" and e["held"] >= fraction * e["total"]

    def finish(self, limit_s=240):
        code = self.proc.wait(limit_s)
        self._reader.join(5)
        return code

    def stderr(self):
        return self.proc.stderr.read() if self.proc.poll() is not None else ""

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
