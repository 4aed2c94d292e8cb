"""Client side of the supervisor daemon: find it, start it, detect and clean stale state."""
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from edgekit.emu.scratch import process_alive
from edgekit.emu.supervisor import EmuError

_START_TIMEOUT = 15.0
_SUN_PATH_MAX = 107


def state_root():
    """$EDGEKIT_HOME/emu (EDGEKIT_HOME defaults to ~/.edgekit)."""
    home = os.environ.get("EDGEKIT_HOME") or os.path.join(os.path.expanduser("~"), ".edgekit")
    return Path(home) / "emu"


class Control:
    def __init__(self, root=None):
        self.root = Path(root) if root else state_root()
        self.sock_path = self.root / "supervisor.sock"
        self.pid_path = self.root / "supervisor.pid"
        if len(str(self.sock_path)) > _SUN_PATH_MAX:
            raise EmuError(f"state directory {self.root} is too deep for a unix socket "
                           f"path ({_SUN_PATH_MAX} bytes max); set EDGEKIT_HOME to a shorter "
                           "directory")
        self.notes = []             # messages for the user (stale state cleaned, ...)

    # --- finding the daemon -----------------------------------------------------------------
    def _pid(self):
        try:
            return int(self.pid_path.read_text().strip())
        except (OSError, ValueError):
            return None

    @staticmethod
    def _alive(pid):
        return process_alive(pid)

    def _connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.connect(str(self.sock_path))
        except OSError:
            s.close()
            return None
        return s

    def running(self):
        """True if a live supervisor answers; cleans up after a dead one."""
        s = self._connect()
        if s:
            s.close()
            return True
        pid = self._pid()
        if pid is not None and self._alive(pid):
            return False        # starting up: its socket is not there yet
        if pid is not None or self.sock_path.exists():
            self.sock_path.unlink(missing_ok=True)
            self.pid_path.unlink(missing_ok=True)
            self.notes.append(f"removed stale emulator state: supervisor pid {pid} is no "
                              "longer running (its boards stopped with it; their flash "
                              f"directories are kept under {self.root / 'boards'})")
        return False

    def ensure(self):
        """Connect to the supervisor, starting a detached one if none runs."""
        if self.running():
            return
        self.root.mkdir(parents=True, exist_ok=True)
        if self._pid() is None:
            log = open(self.root / "supervisor.log", "ab")
            subprocess.Popen([sys.executable, "-m", "edgekit.emu.daemon", str(self.root)],
                             stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                             start_new_session=True, close_fds=True)
            log.close()
        end = time.monotonic() + _START_TIMEOUT
        while time.monotonic() < end:
            s = self._connect()
            if s:
                s.close()
                return
            time.sleep(0.02)
        raise EmuError(f"the emulator supervisor did not start within {_START_TIMEOUT:.0f} s; "
                       f"see {self.root / 'supervisor.log'}")

    # --- requests ------------------------------------------------------------------------------
    def request(self, op, timeout=600.0, **args):
        s = self._connect()
        if s is None:
            raise EmuError("no emulator is running: start a board with `edgekit emu start`")
        try:
            s.settimeout(timeout)
            s.sendall(json.dumps({"op": op, "args": args}).encode() + b"\n")
            data = b""
            while not data.endswith(b"\n"):
                chunk = s.recv(65536)
                if not chunk:
                    raise EmuError("the emulator supervisor closed the connection; see "
                                   f"{self.root / 'supervisor.log'}")
                data += chunk
        except socket.timeout:
            raise EmuError(f"the emulator supervisor did not answer {op!r} within "
                           f"{timeout:.0f} s") from None
        finally:
            s.close()
        answer = json.loads(data)
        if not answer.get("ok"):
            raise EmuError(answer.get("error", "request failed"))
        return answer["result"]
