"""The code `edgekit flash` runs on the device, in the real `micropython`, on a flash directory
mounted at "/" the way the emulator mounts a board's flash (boards/emu_launch.py)."""
import ast
import hashlib
import json
import os
import subprocess

import pytest

from edgekit.flash import scripts as S
from edgekit.flash.image import deflated
from edgekit.paths import BOARDS_DIR, micropython_binary


def _mount_code(flash_dir):
    source = (BOARDS_DIR / "emu_launch.py").read_text()
    funcs = [n for n in ast.parse(source).body
             if isinstance(n, ast.FunctionDef) and n.name == "_emu_flash_vfs"]
    if funcs:
        vfs = ast.get_source_segment(source, funcs[0]) + \
            f"\nvfs = _emu_flash_vfs(os, 1 << 21, 4096)({str(flash_dir)!r})\n"
    else:
        vfs = f"vfs = os.VfsPosix({str(flash_dir)!r})\n"
    return "import os\n" + vfs + "os.umount('/')\nos.mount(vfs, '/')\nos.chdir('/')\n"


def run_on(flash_dir, script, stdin=b"", heap="110K"):
    proc = subprocess.run([micropython_binary(), "-X", f"heapsize={heap}", "-c",
                           _mount_code(flash_dir) + script], input=stdin,
                          capture_output=True, timeout=60)
    return proc


def frames(wire, frame=S.FRAME):
    out = b""
    for i in range(0, len(wire), frame):
        chunk = wire[i:i + frame]
        out += bytes([len(chunk)]) + chunk
    return out


def entry(path, data, wire=None):
    return (path, len(wire if wire is not None else data), wire is not None, len(data),
            hashlib.sha256(data).hexdigest())


def receive(flash_dir, entries, stream):
    code = S.render(S.RECEIVE, FILES=entries, FRAME=S.FRAME, TIMEOUT_MS=2000, ACK=S.ACK)
    proc = run_on(flash_dir, code, stream)
    out = proc.stdout
    return proc, out.count(bytes([S.ACK])), out.replace(bytes([S.ACK]), b"").decode()


MPY = bytes(range(256)) * 24          # compressible, like bytecode
TEXT = b"# main\nimport runtime\n" * 3  # too small to be worth deflating


def test_receive_writes_verified_files_and_replaces_old_ones(tmp_path):
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "a.mpy").write_bytes(b"old version")
    wire = deflated(MPY)
    assert wire is not None and len(wire) < len(MPY)
    stream = frames(wire) + frames(TEXT)
    proc, acks, text = receive(tmp_path, [entry("/lib/a.mpy", MPY, wire),
                                          entry("/main.py", TEXT)], stream)
    assert proc.returncode == 0, proc.stderr
    assert text.split("\n")[:3] == ["ok\t/lib/a.mpy", "ok\t/main.py", "done"]
    assert acks == -(-len(wire) // S.FRAME) + -(-len(TEXT) // S.FRAME)
    assert (tmp_path / "lib" / "a.mpy").read_bytes() == MPY
    assert (tmp_path / "main.py").read_bytes() == TEXT
    assert sorted(os.listdir(tmp_path / "lib")) == ["a.mpy"]     # no temporary left


def test_receive_rejects_a_corrupted_file_and_keeps_the_old_one(tmp_path):
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "a.mpy").write_bytes(b"old version")
    raw = bytearray(MPY)
    raw[1000] ^= 0x01                 # one bit flipped on the way
    garbage = os.urandom(300)         # not a deflate stream at all
    proc, _, text = receive(tmp_path, [entry("/lib/a.mpy", MPY),
                                       entry("/lib/b.mpy", MPY, garbage),
                                       entry("/main.py", TEXT)],
                            frames(bytes(raw)) + frames(garbage) + frames(TEXT))
    assert proc.returncode == 0, proc.stderr
    lines = text.splitlines()
    assert lines[0] == "bad\t/lib/a.mpy\tSHA-256 mismatch after writing"
    assert lines[1] == "bad\t/lib/b.mpy\tdamaged deflate stream"
    assert lines[2:] == ["ok\t/main.py", "done"]
    assert (tmp_path / "lib" / "a.mpy").read_bytes() == b"old version"
    assert sorted(os.listdir(tmp_path / "lib")) == ["a.mpy"]


def test_prelude_ends_a_receiver_cut_off_mid_frame(tmp_path):
    """A host that lost the link sends PRELUDE first: whatever frame the device waited for
    completes, the next length byte is 0, and the receiver stops without touching the
    file it was writing (the next run removes its temporary)."""
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "a.mpy").write_bytes(b"old version")
    stream = frames(MPY)
    cut = stream[:3 * (S.FRAME + 1) + 40]          # mid-frame: 40 of its bytes arrived
    proc, _, text = receive(tmp_path, [entry("/lib/a.mpy", MPY)], cut + S.PRELUDE)
    assert proc.returncode == 0, proc.stderr
    assert text.startswith("abort at /lib/a.mpy") and "done" not in text
    assert (tmp_path / "lib" / "a.mpy").read_bytes() == b"old version"


def test_receiver_gives_up_on_a_silent_link(tmp_path):
    code = S.render(S.RECEIVE, FILES=[entry("/x.bin", MPY)], FRAME=S.FRAME, TIMEOUT_MS=300,
                    ACK=S.ACK)
    # stdin stays open and silent: the device must not hang in the raw REPL for ever
    script = _mount_code(tmp_path) + code
    proc = subprocess.Popen([micropython_binary(), "-c", script], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        proc.stdin.write(frames(MPY)[:S.FRAME + 1])
        proc.stdin.flush()
        out = proc.stdout.read()        # ends when the script returns
    finally:
        proc.kill()
        proc.wait()
    assert b"abort link silent for 300 ms" in out


def test_survey_lists_everything_and_hashes_what_may_match(tmp_path):
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "a.mpy").write_bytes(MPY)
    (tmp_path / "lib" / "stale.mpy").write_bytes(b"x" * 10)
    (tmp_path / "ek" / "sub").mkdir(parents=True)
    (tmp_path / "ek" / "identity").write_bytes(b"id")
    want = {"/lib/a.mpy": len(MPY), "/lib/stale.mpy": 11, "/main.py": 5}
    proc = run_on(tmp_path, S.render(S.SURVEY, WANT=want))
    assert proc.returncode == 0, proc.stderr
    rows = {tuple(line.split("\t")) for line in proc.stdout.decode().splitlines()}
    assert rows == {("D", "/lib"), ("D", "/ek"), ("D", "/ek/sub"),
                    ("F", "/lib/a.mpy", str(len(MPY)), hashlib.sha256(MPY).hexdigest()),
                    ("F", "/lib/stale.mpy", "10", ""),          # size differs: not hashed
                    ("F", "/ek/identity", "2", "")}


def test_probe_reports_the_runtime_flash_heap_and_state(tmp_path):
    probe = S.render(S.PROBE)
    fresh = json.loads(run_on(tmp_path, probe).stdout.decode().splitlines()[-1])
    (tmp_path / "ek").mkdir()
    (tmp_path / "ek" / "identity.bak").write_bytes(b"x")
    (tmp_path / "board.json").write_text('{"name": "rp2040"}')
    used = json.loads(run_on(tmp_path, probe, heap="190K").stdout.decode().splitlines()[-1])
    assert fresh["provisioned"] is False and used["provisioned"] is True
    assert fresh["board_json"] is None and used["board_json"] == "rp2040"
    assert fresh["version"][:2] == [1, 29] and fresh["platform"] == "linux"
    assert fresh["deflate"] is True and fresh["sha256"] is True
    assert fresh["fs_size"] == 1 << 21 and 0 < fresh["fs_free"] <= fresh["fs_size"]
    assert 100 * 1024 < fresh["heap_total"] < 115 * 1024 < used["heap_total"]
    assert fresh["emulated"] is None


def test_remove_deletes_files_then_emptied_dirs(tmp_path):
    (tmp_path / "ek" / "sub").mkdir(parents=True)
    (tmp_path / "ek" / "identity").write_bytes(b"id")
    (tmp_path / "keep.txt").write_bytes(b"k")
    proc = run_on(tmp_path, S.render(S.REMOVE, FILES=["/ek/identity", "/missing"],
                                     DIRS=["/ek/sub", "/ek"]))
    assert proc.stdout.decode().split() == ["3"]
    assert os.listdir(tmp_path) == ["keep.txt"]


def test_load_check_measures_what_importing_costs(tmp_path):
    (tmp_path / "small.py").write_text("X = list(range(200))\n")
    (tmp_path / "big.py").write_text("X = bytearray(300000)\n")

    def check(modules, reach=1024):
        code = f"import sys\nsys.path.append({str(tmp_path)!r})\n" + \
            S.render(S.LOAD_CHECK, MODULES=modules, REACH=reach)
        out = subprocess.run([micropython_binary(), "-X", "heapsize=110K", "-c", code],
                             capture_output=True, timeout=30).stdout
        return json.loads(out.decode().splitlines()[-1])

    ok, big, gone = check(["small"]), check(["small", "big"]), check(["nothere"])
    assert ok["error"] is None and ok["resident"] > 200 * 8 and ok["free"] > 0
    assert ok["free"] + ok["resident"] < ok["total"] <= 110 * 1024
    # Asking for the working heap (what grows a split heap on an esp32 SPIRAM build) on a
    # fixed heap: more than there is fails quietly, and nothing stays taken either way.
    beyond, within = check(["small"], reach=4 << 20), check(["small"], reach=40 * 1024)
    assert beyond["error"] is None and within["error"] is None
    assert beyond["resident"] == within["resident"] == ok["resident"]
    assert beyond["free"] == within["free"] == ok["free"]
    assert big["error"] == "MemoryError importing big"
    assert gone["error"].startswith("ImportError importing nothere")


def test_render_puts_arguments_in_front_as_literals():
    code = S.render("print(A, B)\n", A=[("/x", 1, True)], B={"k": None})
    assert code.splitlines()[:2] == ["A = [('/x', 1, True)]", "B = {'k': None}"]
    ast.parse(code)


@pytest.mark.parametrize("name", ["PROBE", "SURVEY", "REMOVE", "RECEIVE", "LOAD_CHECK"])
def test_device_scripts_compile_in_micropython(tmp_path, name):
    src = getattr(S, name)
    proc = subprocess.run([micropython_binary(), "-c",
                           f"compile({src!r}, 'x', 'exec'); print('ok')"],
                          capture_output=True, timeout=30)
    assert proc.stdout.strip() == b"ok", proc.stderr
