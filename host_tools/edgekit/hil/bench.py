"""A bench board between tests: who may use it, and bringing it back to factory state.

A board reached only through its serial port keeps whatever the previous test left: a
provisioned identity (of the session's fleet, or of a test's own throwaway fleet), another
kind's image, a maintenance strap still held. Every test on a bench therefore starts with
`factory_state(target, kind)`, what a technician does between two jobs: release the strap,
ask the board what it is (HELLO), and if it is not a factory-fresh `kind` with this tree's
firmware, hold the maintenance strap through a reset (SPEC 12: the REPL opens for one boot
whoever provisioned the board), then: a board whose firmware is in its image (frozen, as in
production, and as the emulator's boards) gets its filesystem erased, identity and data with
it; a board running an image from its filesystem gets `edgekit flash --wipe` of the kind's
image (only the files that differ are sent).

Several pytest workers share one tray: a board is held through an exclusive file lock for
the whole test (`BoardLock`), so two tests never talk to one board at once.
"""
import fcntl
import hashlib
import os
import tempfile
import time

import pytest

from edgekit import catalog as C
from edgekit.errors import EdgekitError, LinkError, ProtocolError

_images = {}


def _image(board, kind):
    """The kind's image for the board definition, built once per process."""
    from edgekit.flash import image
    if (board, kind) not in _images:
        _images[(board, kind)] = image.build(board, kind)
    return _images[(board, kind)]


def hello(url, timeout=2.0):
    """The firmware's CAPS, or None if nothing answers HELLO (a board in its REPL)."""
    from edgekit.protocol.session import Session
    from edgekit.transport import SerialTransport
    try:
        with SerialTransport(url) as t:
            return Session(t, timeout=timeout).hello(timeout=timeout).payload
    except (LinkError, ProtocolError):
        return None


def _fresh(caps, kind, version):
    return (caps is not None and caps.get(C.K_STATE) == "factory"
            and kind in str(caps.get(C.K_KIND) or "").split(",")
            and caps.get(C.K_FW) == version)


# Erase every file and directory of the board's filesystem, deepest first: the firmware in
# the board's image (frozen, as on a production board) boots back into factory state.
_ERASE = """
import os
def _rm(d):
    for e in os.ilistdir(d):
        p = (d.rstrip('/') + '/' + e[0])
        if p == '/.frozen':
            continue
        if e[1] == 0x4000:
            _rm(p)
            os.rmdir(p)
        else:
            os.remove(p)
_rm('/')
print('erased')
"""


def factory_state(target, kind):
    """Bring the bench board `target` to a factory-fresh `kind`; skip with the reason when
    its rig cannot. Returns what was done: "fresh", "erased" or "flashed"."""
    rig = target.world
    strap = rig.can("maint_strap") and rig.can("reset")
    if strap:
        rig.set(maint_strap=False)          # a test may have left it held
    caps = hello(target.url)
    version = _tree_version()
    if _fresh(caps, kind, version):
        return "fresh"
    locked = caps is not None and caps.get(C.K_STATE) in ("provisioned", "trial")
    if locked:
        if not strap:
            pytest.skip(f"{target.url} is provisioned (device {caps.get(C.K_DEVICE_ID)}) and "
                        "the rig has no maint_strap stimulus and reset line to factory-reset "
                        "it (docs/hil.md); reflash it by hand")
        rig.set(maint_strap=True)           # SPEC 12: the REPL opens for this one boot
        rig.pulse("reset", 0.1)
    try:
        done = _retry(target.url, lambda: _reset_or_flash(target, kind, caps, version))
    finally:
        if locked:
            rig.set(maint_strap=False)
    if rig.can("power"):
        # A factory-fresh board has no time either: its RTC (which survives a reset) goes
        # with a power cycle, as a board from the line has it.
        rig.pulse("power", 0.2)
        caps = _hello_retry(target.url)
        if not _fresh(caps, kind, version):
            raise EdgekitError(f"{target.url} did not come back factory-fresh after a power "
                               f"cycle (it answers {caps})")
    return done


def _tree_version():
    from edgekit.flash.image import firmware_version
    return firmware_version()


def _reset_or_flash(target, kind, caps, version):
    """The board's REPL is open. Its firmware in its image (no image on the filesystem,
    the frozen firmware of a production board): erase the filesystem; the power cycle that
    follows (or a soft reboot, without a power relay) boots it factory-fresh if that
    firmware is this tree's `kind`. Otherwise flash the kind's image with --wipe (only the
    files that differ are sent)."""
    from edgekit.flash import flow
    from edgekit.flash.device import probe
    cycle = target.world.can("power")
    with _Raw(target.url) as conn:
        on_fs = bool(probe(conn).board_json)
        runs_kind = caps is None or (caps.get(C.K_FW) == version and kind in
                                     str(caps.get(C.K_KIND) or "").split(","))
        if not on_fs:
            conn.exec(_ERASE)
            if cycle and runs_kind:
                return "erased"         # factory_state's power cycle boots it
            conn.reboot()
    if not on_fs and _fresh(_hello_retry(target.url), kind, version):
        return "erased"
    if not target.board:
        pytest.skip(f"{target.url}: name the board definition in the rig file ([rig] board = "
                    "\"esp32\") so the suite can reflash it between tests")
    flow.flash(target.url, _image(target.board, kind), wipe=True)
    return "flashed"


def _raw_connection():
    from edgekit.flash.device import Connection

    class Raw(Connection):
        """The raw REPL without the soft reset `edgekit flash` does on connect: erasing a
        few files needs no fresh heap, and a board's boot costs seconds of real time."""

        def _enter(self):
            self.t.enter_raw_repl(soft_reset=False)
    return Raw


def _Raw(url):  # noqa: N802 - a class made on first use (flash imports mpremote)
    return _raw_connection()(url)


def _hello_retry(url, seconds=20.0):
    end = time.monotonic() + seconds
    while True:
        caps = hello(url)
        if caps is not None or time.monotonic() > end:
            return caps
        time.sleep(0.3)


def _retry(url, step, attempts=3):
    for attempt in range(attempts):
        try:
            return step()
        except (LinkError, ProtocolError) as exc:
            # A board still booting (after the strap reset), or a reset interrupted by the
            # previous test: both steps are idempotent, a rerun completes them.
            if attempt == attempts - 1:
                raise EdgekitError(f"cannot bring {url} back to factory state: {exc}") \
                    from None
            time.sleep(1.0)


class BoardLock:
    """An exclusive lock on one bench board, shared by every pytest process on the host."""

    def __init__(self, port):
        digest = hashlib.sha1(os.path.realpath(port).encode()).hexdigest()[:16]
        self.path = os.path.join(tempfile.gettempdir(), f"edgekit-hil-board-{digest}.lock")
        self.fd = None

    def acquire(self, wait=True):
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            os.close(fd)
            return False
        self.fd = fd
        return True

    def release(self):
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def claim(targets_specs, start):
    """Index of a free board among `targets_specs` (port names), trying from `start` round
    the tray; waits for the one at `start` if all are busy. (index, BoardLock)."""
    n = len(targets_specs)
    order = [(start + i) % n for i in range(n)]
    for i in order:
        lock = BoardLock(targets_specs[i])
        if lock.acquire(wait=False):
            return i, lock
    lock = BoardLock(targets_specs[order[0]])
    lock.acquire()
    return order[0], lock
