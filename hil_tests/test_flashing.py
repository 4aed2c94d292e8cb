"""`edgekit flash` on bare boards: the image lands verified, a rerun skips what is there and
repairs what is not, an interruption (unplug, power cut) is finished by the rerun, the wrong
board and a board whose heap cannot run the image are refused, and the CLI flashes a tray
in parallel. On the emulator the boards start bare (runtime only, empty flash); on a bench
`--board serial:PORT` flashes the real board (it erases what is on it).

What the device holds is read back over its REPL (installer.survey), so the checks are the
same on a bench and on the emulator.
"""
import json
import subprocess
import sys
import threading

import pytest

from edgekit import catalog as C
from edgekit.board_defs import known_boards, load_board, parse_size
from edgekit.errors import LinkError
from edgekit.flash import flow, heap, image as image_mod, installer
from edgekit.flash.device import Connection, TargetError, guess_board, probe
from edgekit.hil.devices import TEST_PASSPHRASE, provision
from edgekit.hil.targets import BoardSpec, EmulatedTarget
from edgekit.ota import bundle as bundle_mod
from edgekit.ota.push import Pusher
from edgekit.ota.sign import sign_with_keystore
from edgekit import firmware_tree
from edgekit.paths import PROTOCOL_DIR

pytestmark = pytest.mark.hil(time="virtual", options={"bare": True})


# The install mechanics are the same for any file set: most tests flash a part of the
# firmware (~30 KB, a few seconds at 115200 baud); the heap and end-to-end tests and
# bench/bench_flash.py use the whole image.
PART = ("cbor", "cose", "ed25519", "envelope", "flashio", "framing", "journal", "schema",
        "senml", "store")
_images = {}


def image_for(board_name, whole=False):
    key = (board_name, whole)
    if key not in _images:
        sources = None if whole else [firmware_tree.module_path(n) for n in PART] + \
            [PROTOCOL_DIR / "catalog.py"]
        _images[key] = image_mod.build(board_name, "water_meter", sources=sources)
    return _images[key]


def board_of(target):
    """The board definition name of the target (the emulator says; a bench board is probed)."""
    if target.board:
        return target.board
    with Connection(target.url) as conn:
        info = probe(conn)
    boards = {n: load_board(n) for n in known_boards()}
    name = guess_board(info, boards)
    if name is None:
        pytest.skip(f"cannot tell which board definition {target.url} is ({info.machine})")
    return name


def on_device(url, image):
    """{path: sha256 hex} of every file on the device (hashing those the image has)."""
    with Connection(url) as conn:
        have, _ = installer.survey(conn, image)
    return {p: d for p, (_, d) in have.items()}


def expected(image):
    return {f.path: f.digest.hex() for f in image.files}


def flash(url, image, **kw):
    kw.setdefault("ignore_heap", True)      # these tests are about the install, not heap
    kw.setdefault("hello", False)
    return flow.flash(url, image, **kw)


def test_bare_board_gets_the_image_and_a_rerun_repairs_only_what_differs(board):
    img = image_for(board_of(board))
    first = flash(board.url, img, wipe=True)
    assert first["ok"] and first["sent"] == len(img.files)
    assert first["wire_bytes"] < img.installed_bytes           # deflated on the wire
    assert on_device(board.url, img) == expected(img)

    again = flash(board.url, img)
    assert (again["sent"], again["skipped"], again["removed"]) == (0, len(img.files), 0)
    assert again["wire_bytes"] == 0

    victim = "/lib/cbor.mpy"
    with Connection(board.url) as conn:        # damage the flash behind the tool's back
        conn.exec(f"f = open({victim!r}, 'r+b')\nf.seek(100)\nb = f.read(1)\nf.seek(100)\n"
                  "f.write(bytes([b[0] ^ 0xFF]))\nf.close()\n"
                  "import os\nos.remove('/lib/senml.mpy')\n"
                  "f = open('/lib/evil.py', 'w')\nf.write('raise SystemExit')\nf.close()")
    damaged = on_device(board.url, img)
    assert damaged[victim] != expected(img)[victim] and "/lib/evil.py" in damaged
    fixed = flash(board.url, img)
    assert fixed["plan"]["send"] == [victim, "/lib/senml.mpy", "/main.py"]
    assert fixed["plan"]["remove"] == ["/main.py", "/lib/evil.py"]
    assert on_device(board.url, img) == expected(img)


def _interrupt_midway(board, img, fault):
    """Flash, calling fault() once a third of the bytes went over; the flash must fail."""
    fired = threading.Event()

    def progress(step, detail=""):
        if step == "transfer" and " KB of " in detail and not fired.is_set():
            done, total = (float(x.split()[0]) for x in detail.split(" of ")[:2])
            if done > total / 3:
                fired.set()
                fault()

    with pytest.raises(LinkError):
        flash(board.url, img, wipe=True, progress=progress)
    assert fired.is_set()


def test_unplugged_mid_transfer_then_rerun_completes(board):
    img = image_for(board_of(board))
    _interrupt_midway(board, img, lambda: board.faults.unplug())
    board.faults.replug()
    partial = on_device(board.url, img)
    assert "/main.py" not in partial         # it boots into its REPL, not a half image
    good = [p for p, d in partial.items() if expected(img).get(p) == d]
    assert 3 < len(good) < len(img.files)
    done = flash(board.url, img)
    assert done["skipped"] == len(good) and done["sent"] == len(img.files) - len(good)
    assert on_device(board.url, img) == expected(img)   # temporaries gone, all verified


def test_power_cut_mid_transfer_then_rerun_completes(board):
    img = image_for(board_of(board))
    _interrupt_midway(board, img, lambda: board.faults.powercut())
    done = flash(board.url, img)
    assert done["ok"] and done["skipped"] > 0
    assert on_device(board.url, img) == expected(img)


def test_a_bundle_for_another_board_is_refused(edgekit_emulator, tmp_path):
    if edgekit_emulator is None:
        pytest.skip("needs an emulated rp2040 beside the board under test")
    target = EmulatedTarget(edgekit_emulator, BoardSpec("emu:rp2040"), time_mode="virtual",
                            bare=True)
    try:
        with pytest.raises(TargetError, match="emulated rp2040 board; the image is for esp32"):
            flash(target.url, image_for("esp32"))
        assert on_device(target.url, image_for("esp32")) == {}        # nothing written
        path = image_for("esp32").bundle.save(tmp_path / "esp32.ekota")
        with pytest.raises(image_mod.ImageError, match="built for board esp32, not rp2040"):
            image_mod.from_bundle(path, "rp2040")
    finally:
        target.close()


def test_heap_that_cannot_run_the_image_is_refused_before_any_transfer(board):
    img = image_for(board_of(board), whole=True)
    with Connection(board.url) as conn:
        info = probe(conn)
    predicted = heap.predict(info, img)
    if not predicted["decisive"]:
        pytest.skip("a 32-bit board: the host's figure is only an upper bound there; the "
                    "on-device load check decides after the install")
    if predicted["fits"]:
        pytest.skip(f"this board's heap holds the image ({info.heap_free} B free)")
    with pytest.raises(flow.HeapError, match="does not fit this board's heap"):
        flow.flash(board.url, img, hello=False)
    assert on_device(board.url, img) == {}


def roomy_board():
    """(board, heap_scale) of an emulated bare board that can run the whole image."""
    margin = 48 * 1024         # what the runtime, the HAL and the REPL hold before imports
    resident = heap.host_footprint(image_for("rp2040", whole=True))   # the same modules
    for name in sorted(known_boards(), key=lambda n: parse_size(load_board(n)["heap"])):
        board_def = load_board(name)
        if resident + heap.working_need(board_def) + margin <= parse_size(board_def["heap"]):
            return name, 1.0
    board_def = load_board("rp2040")
    need = resident + heap.working_need(board_def) + margin
    return "rp2040", min(4.0, need / parse_size(board_def["heap"]))


def test_bare_to_flashed_to_provisioned_to_updated(edgekit_emulator, hil_fleet):
    """The technician's path on a board whose heap holds the image from the filesystem: the
    smallest board definition that does (a board with PSRAM), else an rp2040 given the heap
    through heap_scale."""
    if edgekit_emulator is None:
        pytest.skip("runs on emulated boards (a bench runs its own board through the rest)")
    name, scale = roomy_board()
    img = image_for(name, whole=True)
    target = EmulatedTarget(edgekit_emulator, BoardSpec(f"emu:{name}"), time_mode="virtual",
                            bare=True, heap_scale=scale)
    try:
        with Connection(target.url) as conn:
            info = probe(conn)
        if not heap.predict(info, img)["fits"]:
            pytest.skip(f"the emulator gives a bare {name} {info.heap_total // 1024} KB of "
                        f"heap whatever heap_scale says, and no board definition has the "
                        f"heap for the image: {heap.host_footprint(img) // 1024} KB resident "
                        f"+ {heap.working_need(img.board_def) // 1024} KB to work in")
        report = flow.flash(target.url, img)
        assert report["heap"]["fits"]
        assert report["firmware"]["state"] == "factory"
        assert report["firmware"]["kinds"] == ["water_meter"]
        dev = provision(target, hil_fleet, "water_meter")
        assert dev.session.hello().payload[C.K_STATE] == "provisioned"
        # an OTA update on the flashed image: the slot overlays the flashed /lib. In real
        # time: in virtual time the trial's deadline passes while the board idles between
        # two frames from a host slowed by load, and the update rolls back (seen in CI).
        target.handle.set_time_mode("real")
        apps = bundle_mod.default_sources("water_meter", app_only=True)
        update = sign_with_keystore(bundle_mod.build(name, "water_meter", "1.0.1", seq=2,
                                                     sources=apps, deadline=30),
                                    hil_fleet.keystore, TEST_PASSPHRASE)
        result = Pusher(dev.session, update, dev.public_key).run()
        assert result["status"] == "installed" and result["running"] == "1.0.1"
        assert dev.session.hello().payload[C.K_FW] == "1.0.1"
        # a provisioned device's REPL is locked (SPEC 12): the flash tool says how to open it
        with pytest.raises(TargetError, match="REPL is locked: open it with `edgekit "
                                              "maintenance"):
            flow.flash(target.url, img, wipe=True)
        dev.open_maintenance(minutes=5)
        dev.close()
        with pytest.raises(TargetError, match="is provisioned"):
            flow.flash(target.url, img)
        wiped = flow.flash(target.url, img, wipe=True)
        assert wiped["firmware"]["state"] == "factory"
        assert "/ek/identity" in wiped["plan"]["remove"]
    finally:
        target.close()


def test_cli_flashes_a_tray_in_parallel_with_one_json_report(edgekit_emulator, tmp_path):
    if edgekit_emulator is None:
        pytest.skip("needs emulated boards for a tray")
    tray = [EmulatedTarget(edgekit_emulator, BoardSpec(f"emu:{name}"), time_mode="virtual",
                           bare=True) for name in ("esp32", "esp32", "rp2040")]
    try:
        img = image_for("esp32")
        bundle = img.bundle.save(tmp_path / "part.ekota")
        proc = subprocess.run([sys.executable, "-m", "edgekit.cli", "flash", "--board",
                               "esp32", "--kind", "water_meter", "--bundle", str(bundle),
                               "--ignore-heap", "--no-hello", "--json", "--ports"] +
                              [t.url for t in tray], capture_output=True, text=True,
                              timeout=300)
        # one board of the tray is the wrong kind: what the user fixes, 2 (as in a one-port
        # flash), not the link's 3
        assert proc.returncode == 2, proc.stderr
        report = json.loads(proc.stdout)
        assert (report["ok"], report["failed"]) == (2, 1)
        by_port = {d["port"]: d for d in report["devices"]}
        assert report["image"]["files"] == len(img.files)
        for t in tray[:2]:
            assert by_port[t.url]["ok"] and by_port[t.url]["sent"] == len(img.files)
            assert on_device(t.url, img) == expected(img)
        assert "emulated rp2040 board" in by_port[tray[2].url]["error"]
    finally:
        for t in tray:
            t.close()
