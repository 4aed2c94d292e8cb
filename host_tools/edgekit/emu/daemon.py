"""The detached supervisor behind `edgekit emu`: boards outlive the command that started them.

    python -m edgekit.emu.daemon STATE_ROOT

State lives in STATE_ROOT ($EDGEKIT_HOME/emu): supervisor.sock (control socket: one JSON
request per line, one JSON answer per line), supervisor.pid, supervisor.log, boards/<id>/
(flash, tty link). A lock file keeps a second daemon from starting on the same root. The
daemon exits when its last board is stopped, or on SIGTERM (boards stop with it).
"""
import asyncio
import fcntl
import json
import os
import signal
import sys
import traceback
from pathlib import Path

from edgekit.emu.supervisor import Supervisor
from edgekit.errors import EdgekitError

# Requests the control socket accepts: the Supervisor methods of the same name.
OPS = ("start", "fleet", "list", "info", "stop", "stop_many", "stop_all", "set", "world",
       "drive", "fault", "advance", "clock", "powercut", "brownout", "reset", "noise",
       "unplug", "replug", "drift", "set_rtc", "set_time_mode", "link_stats")


class Daemon:
    def __init__(self, root):
        self.root = Path(root)
        self.loop = asyncio.get_running_loop()
        self.sup = Supervisor(self.loop, self.root)
        self.done = asyncio.Event()

    async def handle(self, reader, writer):
        try:
            while True:
                line = await reader.readline()
                if not line:
                    break
                writer.write(json.dumps(await self.dispatch(line)).encode() + b"\n")
                await writer.drain()
                if self.done.is_set():
                    break
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def dispatch(self, line):
        try:
            req = json.loads(line)
            op, args = req["op"], req.get("args", {})
            if op == "ping":
                return {"ok": True, "result": {"pid": os.getpid(), "boards": len(self.sup.boards)}}
            if op == "shutdown":
                self.sup.stop_all()
                self.done.set()
                return {"ok": True, "result": {"stopped": True}}
            if op not in OPS:
                return {"ok": False, "error": f"unknown request {op!r}"}
            result = getattr(self.sup, op)(**args)
            if asyncio.iscoroutine(result):
                result = await result
            if op in ("stop", "stop_many", "stop_all") and not self.sup.boards:
                self.done.set()         # nothing left to supervise
            return {"ok": True, "result": result}
        except (EdgekitError, ValueError, KeyError, TypeError) as exc:
            return {"ok": False, "error": str(exc) or type(exc).__name__}
        except Exception as exc:  # noqa: BLE001 - report, keep serving the other boards
            traceback.print_exc()
            return {"ok": False, "error": f"internal error: {exc!r} (see supervisor.log)"}


async def serve(root):
    root = Path(root)
    daemon = Daemon(root)
    sock = root / "supervisor.sock"
    sock.unlink(missing_ok=True)
    server = await asyncio.start_unix_server(daemon.handle, path=str(sock))
    os.chmod(sock, 0o600)
    (root / "supervisor.pid").write_text(str(os.getpid()))
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        daemon.loop.add_signal_handler(sig, daemon.done.set)
    print(f"edgekit emu supervisor {os.getpid()} serving {sock}", flush=True)
    try:
        await daemon.done.wait()
    finally:
        server.close()
        daemon.sup.close()
        sock.unlink(missing_ok=True)
        (root / "supervisor.pid").unlink(missing_ok=True)


def main(argv):
    root = Path(argv[0])
    root.mkdir(parents=True, exist_ok=True)
    lock = open(root / "supervisor.lock", "w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        print("another supervisor already serves this state directory", file=sys.stderr)
        return 1
    asyncio.run(serve(root))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
