"""Put an image's files on a device over its raw REPL, fast and verified.

    have = survey(conn, image)                 # what the flash holds (hashing what may match)
    plan = make_plan(image, have, info)        # what to send, keep and remove
    remove(conn, plan); send(conn, plan.send)  # device checks every file's SHA-256

Speed: the receiver (scripts.RECEIVE) goes over once by raw-paste; file bytes then flow as
raw binary frames (deflated where the device has `deflate`) under a two-frame window, with
no per-chunk REPL round trip and no repr/base64 inflation (mpremote's `fs cp` sends
`f.write(b'...')` lines of 256 bytes, one exec each).
"""
import time

from edgekit.errors import LinkError
from edgekit.flash import scripts
from edgekit.flash.device import DeviceError, TargetError
from edgekit.flash.image import MAIN
from edgekit.ui import rate_line

ATTEMPTS = 3            # a file that fails its on-device check is sent again, this often
DEVICE_SILENCE_MS = 10000
_ACK_TIMEOUT = 15.0     # inflating and hashing a file between two frames takes < 1 s


class Plan:
    def __init__(self, send, keep, remove_files, remove_dirs):
        self.send = send
        self.keep = keep
        self.remove_files = remove_files
        self.remove_dirs = remove_dirs

    @property
    def changes(self):
        return bool(self.send or self.remove_files or self.remove_dirs)

    def describe(self):
        return {"send": [f.path for f in self.send], "skip": [f.path for f in self.keep],
                "remove": self.remove_files + self.remove_dirs}


def survey(conn, image):
    """({path: (size, sha256 hex or "")}, {dir paths}) of the whole filesystem."""
    want = {f.path: f.size for f in image.files}
    files, dirs = {}, set()
    for line in conn.exec(scripts.render(scripts.SURVEY, WANT=want)).splitlines():
        parts = line.rstrip("\r").split("\t")
        if parts[0] == "D" and len(parts) == 2:
            dirs.add(parts[1])
        elif parts[0] == "F" and len(parts) == 4:
            files[parts[1]] = (int(parts[2]), parts[3])
    return files, dirs


def _parents(path):
    out = []
    while "/" in path.rstrip("/")[1:]:
        path = path[:path.rfind("/")]
        out.append(path)
    return out


def make_plan(image, have, dirs) -> Plan:
    keep_dirs = {d for f in image.files for d in _parents(f.path)}
    wanted = {f.path for f in image.files}
    send = [f for f in image.files if have.get(f.path) != (f.size, f.digest.hex())]
    keep = [f for f in image.files if f not in send]
    remove_files = sorted(p for p in have if p not in wanted)
    remove_dirs = sorted((d for d in dirs if d not in keep_dirs),
                         key=lambda d: (-d.count("/"), d))
    if send or remove_files or remove_dirs:
        # Anything changes: main.py goes first and comes back last, so that until the
        # image is complete and checked the board boots into its REPL, not into a mix.
        main = next(f for f in image.files if f.path == MAIN)
        if MAIN in have:
            remove_files.insert(0, MAIN)
        send = [f for f in send if f.path != MAIN] + [main]
        keep = [f for f in keep if f.path != MAIN]
    return Plan(send, keep, remove_files, remove_dirs)


def _blocks(n, block):
    return (n + block - 1) // block + 1      # data blocks + the file's metadata block


def check_space(plan, have, info, use_deflate=True):
    """TargetError if the flash cannot take the files, counted in filesystem blocks at the
    worst moment: stale files are gone, every new file is written, and one file still has
    both its received (deflated) form and its old copy beside it."""
    block = info.fs_block or 4096
    old = [_blocks(have[f.path][0], block) for f in plan.send if f.path in have]
    freed = sum(_blocks(have[p][0], block) for p in plan.remove_files if p in have)
    freed += sum(old) - max(old, default=0)
    need = sum(_blocks(f.size, block) for f in plan.send)
    need += max((_blocks(len(f.wire), block) for f in plan.send
                 if use_deflate and f.deflated), default=0)
    avail = (info.fs_free or 0) // block + freed
    if need > avail:
        raise TargetError(f"the image needs {need * block // 1024} KB of flash, "
                          f"{avail * block // 1024} KB are free: use a board with a larger "
                          "filesystem, or --wipe to clear what else is on it")


def remove(conn, plan):
    if plan.remove_files or plan.remove_dirs:
        conn.exec(scripts.render(scripts.REMOVE, FILES=plan.remove_files,
                                 DIRS=plan.remove_dirs))


class _Stream:
    """Frames out, ACKs and text back, on mpremote's serial port."""

    def __init__(self, ser):
        self.ser = ser
        self.acks = 0
        self.eofs = 0
        self.out = bytearray()
        self.err = bytearray()
        self.last = time.monotonic()

    def pump(self, wait):
        self.ser.timeout = wait
        try:
            data = self.ser.read(max(1, self.ser.in_waiting))
        finally:
            self.ser.timeout = None
        if data:
            self.last = time.monotonic()
        for b in data:
            if b == scripts.ACK and self.eofs == 0:
                self.acks += 1
            elif b == 4:
                self.eofs += 1
            elif self.eofs == 0:
                self.out.append(b)
            elif self.eofs == 1:
                self.err.append(b)

    def silent_for(self):
        return time.monotonic() - self.last


def _frames(files, use_deflate):
    for f in files:
        wire = f.wire if use_deflate and f.deflated else f.data
        for i in range(0, len(wire), scripts.FRAME):
            chunk = wire[i:i + scripts.FRAME]
            yield bytes([len(chunk)]) + chunk


def _send_once(conn, files, use_deflate, progress):
    entries = [(f.path, len(f.wire) if use_deflate and f.deflated else f.size,
                bool(use_deflate and f.deflated), f.size, f.digest.hex()) for f in files]
    total = sum(e[1] for e in entries)
    code = scripts.render(scripts.RECEIVE, FILES=entries, FRAME=scripts.FRAME,
                          TIMEOUT_MS=DEVICE_SILENCE_MS, ACK=scripts.ACK)
    conn.guard(conn.t.exec_raw_no_follow, code)
    s = _Stream(conn.serial)
    sent = frames = 0
    started = last_report = time.monotonic()

    def io():
        nonlocal sent, frames, last_report
        for frame in _frames(files, use_deflate):
            while frames - s.acks >= scripts.WINDOW:
                s.pump(0.05)
                if s.eofs:
                    return
                if b">>> " in s.out:
                    raise LinkError(f"{conn.url}: the board restarted during the transfer "
                                    f"(power?) after {sent} of {total} bytes; rerun the same "
                                    "command to finish the install")
                if s.silent_for() > _ACK_TIMEOUT:
                    raise LinkError(f"{conn.url}: the device stopped acknowledging after "
                                    f"{sent} of {total} bytes; rerun the same command to "
                                    "finish the install")
            conn.serial.write(frame)
            frames += 1
            sent += len(frame) - 1
            if progress and time.monotonic() - last_report > 0.5:
                last_report = time.monotonic()
                progress("transfer", rate_line(sent, total, started))
        while s.eofs < 2:
            s.pump(0.05)
            if s.silent_for() > _ACK_TIMEOUT:
                raise LinkError(f"{conn.url}: no answer from the device after the last "
                                "file; rerun the same command to finish the install")

    conn.guard(io)
    text = s.out.decode("utf-8", "replace")
    results = {}
    for line in text.splitlines():
        parts = line.rstrip("\r").split("\t")
        if parts[0] == "ok" and len(parts) == 2:
            results[parts[1]] = None
        elif parts[0] == "bad" and len(parts) == 3:
            results[parts[1]] = parts[2]
    if s.err.strip() or "done" not in text.split():
        raise DeviceError(f"the receiver on the device stopped: "
                          f"{(text + s.err.decode('utf-8', 'replace')).strip()[-600:]}")
    return results, sent, time.monotonic() - started


def send(conn, files, use_deflate=True, progress=None):
    """Send `files`, resending those the device rejects; returns transfer statistics."""
    pending = list(files)
    stats = {"files": len(files), "wire_bytes": 0, "seconds": 0.0, "resent": 0}
    for attempt in range(ATTEMPTS):
        if not pending:
            break
        results, sent, seconds = _send_once(conn, pending, use_deflate, progress)
        stats["wire_bytes"] += sent
        stats["seconds"] += seconds
        bad = [f for f in pending if results.get(f.path, "no answer") is not None]
        if attempt:
            stats["resent"] += len(pending)
        if bad and attempt == ATTEMPTS - 1:
            why = "; ".join(f"{f.path}: {results.get(f.path, 'no answer')}" for f in bad)
            raise DeviceError(f"{len(bad)} file(s) failed their SHA-256 check on the device "
                              f"{ATTEMPTS} times ({why}): check the cable, then rerun")
        pending = bad
    return stats
