"""Power cuts against store.py and journal.py.

Two kinds, both in the real MicroPython VM:
- deterministic brown-outs: a BrownoutFlash fails operation N of a save / commit / delete /
  append / ack / eviction / recovery (a write keeps only a prefix of its bytes), for every N,
  then a reboot (a new object on a plain flash) must find old-or-new, never a mix;
- real kills: a writer process appends, saves and commits while printing what returned; the
  host SIGKILLs it at seeded random instants, restarts it, and checks that everything
  reported durable is there, seqs never repeat, and configs and commits are whole.
  EDGEKIT_NIGHTLY=1 runs the long campaign; EDGEKIT_POWERCUT_SEED picks another seed.
"""
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from edgekit.paths import micropython_binary
from edgekit.testing import mp
from edgekit.testing.mpycache import compile_modules

SUPPORT = Path(__file__).resolve().parent / "support"     # brownout.BrownoutFlash

NIGHTLY = os.environ.get("EDGEKIT_NIGHTLY") == "1"
SEED = int(os.environ.get("EDGEKIT_POWERCUT_SEED", "424242"))
CUTS = 1000 if NIGHTLY else 60


@pytest.fixture(scope="module")
def lib(tmp_path_factory):
    """The storage modules compiled by mpy-cross, as a device runs them."""
    return compile_modules(("flashio", "store", "journal"), tmp_path_factory.mktemp("mpy"))


# --- deterministic brown-outs -------------------------------------------------------------

BROWNOUT = r'''
import sys
sys.path.insert(0, %(lib)r)
import json, os, store, journal, flashio, brownout

ROOT = %(root)r
NAMES = ("id", "cert", "anch", "conf")
KEEPS = (0, None, -1)   # nothing, half, all but the last byte of the cut write
n_case = [0]


def fresh():
    n_case[0] += 1
    return ROOT + "/c%%d" %% n_case[0]


def emit(name, res):
    print(json.dumps([name, res]))


class Out:
    """Prints each result as it comes: one large JSON document would not fit the heap."""

    def __init__(self, name):
        self.name = name
        self.last = None

    def append(self, res):
        self.last = res
        emit(self.name, res)


def keep_of(k, size):
    return size - 1 if k == -1 else k


def files(root):
    return sorted(os.listdir(root))


def doc(g):
    # Each record of generation g carries g and a size that depends on g, so a mix of
    # generations or a torn record cannot pass for a whole one.
    return {"g": g, "pad": "p" * (g * 7 %% 23)}


def commit_gen(s, g):
    s.commit(dict((n, doc(g)) for n in NAMES))


def gens(root, flash=None):
    s = store.Store(root, flash or flashio.PlainFlash())
    vals = [s.load(n) for n in NAMES]
    return [v["g"] if v == doc(v["g"]) else "mixed" for v in vals], s


class Recorder(flashio.PlainFlash):
    def __init__(self):
        flashio.PlainFlash.__init__(self)
        self.log = []

    def write(self, f, data):
        self.log.append("write")
        flashio.PlainFlash.write(self, f, data)

    def rename(self, a, b):
        self.log.append("rename " + b.rsplit("/", 1)[-1])
        flashio.PlainFlash.rename(self, a, b)

    def remove(self, p):
        self.log.append("remove " + p.rsplit("/", 1)[-1])
        flashio.PlainFlash.remove(self, p)


def cut(fn, flash):
    try:
        fn(flash)
        return "completed"
    except OSError:
        return "cut"


# Commit: every operation, every kind of torn write, and a second cut during recovery.
root = fresh()
s = store.Store(root, flashio.PlainFlash())
commit_gen(s, 1)
commit_gen(s, 2)
rec = Recorder()
commit_gen(store.Store(root, rec), 3)
emit("commit_ops", rec.log)
out = Out("commit")
for k in range(1, len(rec.log) + 1):
    for keep in KEEPS:
        root = fresh()
        s = store.Store(root, flashio.PlainFlash())
        commit_gen(s, 1)
        commit_gen(s, 2)
        how = cut(lambda fl: commit_gen(store.Store(root, fl), 3),
                  brownout.BrownoutFlash(k, keep))
        # A second cut at every point of the recovery itself, then a clean boot.
        second = []
        m = 1
        while True:
            r = store.Store(root, brownout.BrownoutFlash(m, keep))
            if cut(lambda fl: r.recover(), None) == "completed":
                break
            second.append(gens(root)[0])
            m += 1
            if m > 64:
                second.append("recovery does not converge")
                break
        g, s2 = gens(root)
        out.append([k, keep, how, g, files(root), s2.fallbacks, second])

# Single save of a config over an existing one (and the first save of a new one).
rec = Recorder()
root = fresh()
store.Store(root, rec).save("cfg", doc(1))
first_ops = list(rec.log)
del rec.log[:]
store.Store(root, rec).save("cfg", doc(2))
emit("save_ops", [first_ops, rec.log])
out = Out("save")
for existing in (0, 1):
    ops = len(rec.log) if existing else len(first_ops)
    for k in range(1, ops + 1):
        for keep in KEEPS:
            root = fresh()
            if existing:
                s = store.Store(root, flashio.PlainFlash())
                s.save("cfg", doc(0))
                s.save("cfg", doc(1))
            how = cut(lambda fl: store.Store(root, fl).save("cfg", doc(2)),
                      brownout.BrownoutFlash(k, keep))
            r = store.Store(root, flashio.PlainFlash())
            v = r.load("cfg")
            g = None if v is None else (v["g"] if v == doc(v["g"]) else "mixed")
            out.append([existing, k, keep, how, g, r.last_source, r.fallbacks, files(root)])

# Delete: present or gone, never the older backup brought back.
out = Out("delete")
for k in range(1, 9):
    root = fresh()
    s = store.Store(root, flashio.PlainFlash())
    s.save("cfg", doc(1))
    s.save("cfg", doc(2))
    how = cut(lambda fl: store.Store(root, fl).delete("cfg"), brownout.BrownoutFlash(k))
    r = store.Store(root, flashio.PlainFlash())
    v = r.load("cfg")
    out.append([k, how, None if v is None else v["g"], r.last_source])
    if how == "completed":
        break


# Journal append: a torn record at every length.
def body(seq, n=24):
    s = b"%%d:" %% seq
    return s + b"y" * (n - len(s))


def jopen(root, flash=None, max_bytes=2048, seg=256):
    return journal.Journal(root, "j", max_bytes, seg, flash or flashio.PlainFlash())


def jstate(root, **kw):
    j = jopen(root, **kw)
    seqs = []
    ok = True
    frm = j.first_seq
    while True:
        recs = j.read(frm, 32, 4096)
        if not recs:
            break
        for q, p in recs:
            ok = ok and p == body(q) and (not seqs or q > seqs[-1])
            seqs.append(q)
        frm = recs[-1][0] + 1
    st = j.stats()
    nxt = j.append(body(j.last_seq + 1))
    j.close()
    return {"seqs": seqs, "ok": ok, "torn": st["torn"], "dropped": st["dropped"],
            "acked": st["acked"], "first": st["first_seq"], "next": nxt}


out = Out("append")
for keep in range(0, 36):
    root = fresh()
    j = jopen(root)
    for i in range(10):
        j.append(body(i + 1))
    j.close()
    how = cut(lambda fl: jopen(root, fl).append(body(11)), brownout.BrownoutFlash(1, keep))
    out.append([keep, how, jstate(root)])

# Journal append that rolls a segment and evicts (meta save, segment delete, write),
# and ack (meta save, acked-segment delete): cut at every operation.
for kind in ("evict", "ack"):
    out = Out(kind)
    k = 1
    while k < 40:
        for keep in (0, None):
            root = fresh()
            j = jopen(root)
            for i in range(2048 // 36 if kind == "evict" else 30):
                j.append(body(i + 1))
            last = j.last_seq
            j.close()
            fl = brownout.BrownoutFlash(k, keep)
            if kind == "evict":
                how = cut(lambda fl: jopen(root, fl).append(body(last + 1)), fl)
            else:
                how = cut(lambda fl: jopen(root, fl).ack(20), fl)
            out.append([k, keep, how, last, jstate(root)])
        if how == "completed":
            break
        k += 1

# Recovery of a torn tail (copy + rename), cut at every operation.
out = Out("truncate")
k = 1
while k < 64:
    root = fresh()
    j = jopen(root, max_bytes=8192, seg=1024)
    for i in range(20):
        j.append(body(i + 1))
    j.close()
    path = j.dir + "/" + sorted(f for f in os.listdir(j.dir) if f.endswith(".log"))[-1]
    f = open(path, "ab")
    f.write(b"\xecJ\x18\x00\x15")
    f.close()
    how = cut(lambda fl: jopen(root, fl, max_bytes=8192, seg=1024), brownout.BrownoutFlash(k))
    st = jstate(root, max_bytes=8192, seg=1024)
    out.append([k, how, st])
    if how == "completed":
        break
    k += 1
'''


@pytest.fixture(scope="module")
def b(tmp_path_factory, lib):
    root = tmp_path_factory.mktemp("brownout")
    out = mp.run(BROWNOUT % {"root": str(root), "lib": lib}, timeout=240,
                 extra_paths=[SUPPORT])
    res = {}
    for ln in out.splitlines():
        if ln.startswith("["):
            name, item = json.loads(ln)
            res.setdefault(name, []).append(item)
    return res


def test_commit_is_all_or_nothing_at_every_cut(b):
    ops = b["commit_ops"][0]
    point = ops.index("rename _commit") + 1      # the operation that commits
    assert len(b["commit"]) == 3 * len(ops)
    for k, keep, how, g, files, fallbacks, second in b["commit"]:
        want = 3 if k > point else 2
        assert how == "cut", (k, keep)
        assert g == [want] * 4, (k, keep, g)
        for s in second:                          # boots cut again during recovery
            assert s in ([2] * 4, [3] * 4), (k, keep, s)
        assert files == ["anch", "anch.bak", "cert", "cert.bak", "conf", "conf.bak",
                         "id", "id.bak"], (k, keep, files)
        assert fallbacks == 0, (k, keep)
    assert any(second for *_, second in b["commit"]), "no recovery was ever cut"


def test_save_is_old_or_new_at_every_cut(b):
    first_ops, ops = b["save_ops"][0]
    assert ops == ["write", "rename cfg.bak", "rename cfg"]
    assert first_ops == ["write", "rename cfg"]
    seen = set()
    for existing, k, keep, how, g, source, fallbacks, files in b["save"]:
        assert how == "cut"
        assert g in ((1, 2) if existing else (None, 2)), (existing, k, keep, g)
        # A cut save is not damage: no fallback, and no staging file left behind.
        assert source in ("current", None) and fallbacks == 0, (existing, k, keep)
        assert not [f for f in files if f.endswith(".new")]
        seen.add(g)
    assert seen == {None, 1, 2}


def test_delete_never_resurrects_the_backup(b):
    assert [how for _, how, _, _ in b["delete"]] == ["cut", "cut", "completed"]
    for k, how, g, source in b["delete"]:
        assert g in (2, None) and source in ("current", None), (k, g, source)
    assert b["delete"][-1][2] is None


def test_torn_append_at_every_length(b):
    for keep, how, st in b["append"]:
        assert how == "cut" and st["ok"]
        assert st["seqs"] == list(range(1, 11)), (keep, st)
        assert st["torn"] == (1 if keep else 0), (keep, st)
        assert st["next"] == 11


def test_eviction_cut_never_loses_count_or_reuses_seq(b):
    assert b["evict"][-1][2] == "completed"
    for k, keep, how, last, st in b["evict"]:
        assert st["ok"], (k, st)
        assert st["seqs"][-1] in (last, last + 1) and st["next"] == st["seqs"][-1] + 1
        # Every record missing from the front was counted as dropped, exactly once.
        assert st["dropped"] == st["first"] - 1, (k, keep, st)


def test_ack_cut_keeps_old_or_new_pointer(b):
    assert b["ack"][-1][2] == "completed"
    for k, keep, how, last, st in b["ack"]:
        assert st["ok"] and st["acked"] in (0, 20), (k, st)
        assert st["seqs"][-1] == last and st["next"] == last + 1
        assert st["first"] <= 21 and st["dropped"] == 0


def test_torn_tail_recovery_survives_a_cut(b):
    assert b["truncate"][-1][1] == "completed" and len(b["truncate"]) > 1
    for k, how, st in b["truncate"]:
        assert st["ok"] and st["seqs"] == list(range(1, 21)), (k, st)
        assert st["next"] == 21


# --- real kills ---------------------------------------------------------------------------

WRITER = r'''
import sys
sys.path.insert(0, %(lib)r)
import json, store, journal

ROOT = %(root)r
BOOT = %(boot)d
CHECK_ONLY = %(check_only)d
NAMES = ("id", "cert", "anch", "conf")


def body(boot, seq):
    s = b"%%d:%%d:" %% (boot, seq)
    return s + b"z" * (8 + seq %% 29)


def cfg(v):
    return {"v": v, "w": v * 3, "pad": "q" * (v %% 41)}


s = store.Store(ROOT + "/st")
j = journal.Journal(ROOT, "tel", 8192, 1024)
c = s.load("cfg")
c_src = s.last_source       # before the loads below overwrite it
tx = [s.load(n) for n in NAMES]
runs = []
bad = []
frm = j.first_seq
while True:
    recs = j.read(frm, 32, 4096)
    if not recs:
        break
    for q, p in recs:
        parts = p.split(b":")
        b = int(parts[0])
        if int(parts[1]) != q or p != body(b, q):
            bad.append(q)
        if runs and runs[-1][0] == b and runs[-1][2] == q - 1:
            runs[-1][2] = q
        else:
            runs.append([b, q, q])
    frm = recs[-1][0] + 1
st = j.stats()
print("STATE " + json.dumps({"cfg": c, "cfg_src": c_src, "tx": tx, "runs": runs,
                             "bad": bad, "stats": st, "fallbacks": s.fallbacks}))
if CHECK_ONLY:
    sys.exit(0)
v = c["v"] if c else 0
g = tx[0]["g"] if tx[0] else 0
i = 0
while True:
    i += 1
    q = j.last_seq + 1
    got = j.append(body(BOOT, q))
    print("A %%d %%d" %% (got, q))
    if i %% 5 == 0:
        v += 1
        s.save("cfg", cfg(v))
        print("S %%d" %% v)
    if i %% 9 == 0:
        g += 1
        s.commit(dict((n, {"g": g, "n": n}) for n in NAMES))
        print("C %%d" %% g)
    if i %% 23 == 0 and j.last_seq > 150:
        # Lag behind: older unacknowledged records get evicted, exercising `dropped`.
        a = j.last_seq - 150
        j.ack(a)
        print("K %%d" %% a)
'''


def _start(root, lib, boot, check_only, out_path):
    script = root / f"writer{boot}.py"
    script.write_text(WRITER % {"lib": lib, "root": str(root / "flash"), "boot": boot,
                                "check_only": int(check_only)})
    out = open(out_path, "wb")
    proc = subprocess.Popen([micropython_binary(), "-X", "heapsize=110K", str(script)],
                            stdout=out, stderr=subprocess.STDOUT)
    return proc, out


def _wait_for_state(path, proc, timeout=30):
    end = time.monotonic() + timeout
    while b"STATE " not in Path(path).read_bytes():
        if proc.poll() is not None or time.monotonic() > end:
            return
        time.sleep(0.002)


def _lines(path):
    data = Path(path).read_bytes()
    # A line cut by the kill has no newline: it never counts as reported.
    return [ln.decode() for ln in data.split(b"\n")[:-1]]


def _check_state(state, hist, where):
    assert "Traceback" not in state, where
    st = state["stats"]
    assert state["bad"] == [], (where, state["bad"])
    # Seqs strictly increasing across runs (runs are built in read order).
    prev = 0
    for boot, lo, hi in state["runs"]:
        assert lo > prev and hi >= lo, (where, state["runs"])
        prev = hi
    # Every append that returned is present (unless evicted or acked away), from its boot.
    present = {}
    for boot, lo, hi in state["runs"]:
        for q in range(lo, hi + 1):
            present[q] = boot
    for q, boot in hist["appended"].items():
        if q >= st["first_seq"]:
            assert present.get(q) == boot, (where, q, boot, present.get(q))
    # At most one record per boot (its in-flight append) was not reported.
    unreported = [q for q in present if q not in hist["appended"]]
    assert len(unreported) <= hist["boots"], (where, unreported)
    assert st["last_seq"] >= max(hist["appended"], default=0)
    # Config: whole, and the last reported version or the one in flight.
    c = state["cfg"]
    if hist["cfg"] or c:
        assert c == {"v": c["v"], "w": c["v"] * 3, "pad": "q" * (c["v"] % 41)}, (where, c)
        assert c["v"] in (hist["cfg"], hist["cfg"] + 1), (where, c, hist["cfg"])
        assert state["cfg_src"] == "current"
    # Commit: all four records of one generation, the last reported or the one in flight.
    tx = state["tx"]
    gs = {t["g"] if t else 0 for t in tx}
    assert len(gs) == 1, (where, tx)
    assert gs.pop() in (hist["commit"], hist["commit"] + 1), (where, tx, hist["commit"])
    assert all(t is None or t["n"] == n for t, n in zip(tx, ("id", "cert", "anch", "conf")))
    # Ack pointer: never behind what was reported.
    assert hist["ack"] <= st["acked"] <= st["last_seq"], (where, st, hist["ack"])
    assert state["fallbacks"] == 0, where


def test_sigkill_campaign(tmp_path, lib):
    rng = random.Random(SEED)
    hist = {"appended": {}, "cfg": 0, "commit": 0, "ack": 0, "boots": 0}
    totals = {"torn": 0, "recovery_cuts": 0, "dropped": 0}
    last_seq_reported = 0
    boot_times = []
    for boot in range(1, CUTS + 2):
        final = boot == CUTS + 1
        out_path = tmp_path / f"out{boot}.txt"
        proc, out = _start(tmp_path, lib, boot, final, out_path)
        try:
            if final:
                proc.wait(timeout=60)
            else:
                # A quarter of the cuts land anywhere from start-up on (so in recovery
                # too); the rest at a seeded instant after recovery reported its state.
                if rng.random() < 0.25:
                    # Scaled to this machine's measured start-up + recovery time.
                    ready = sorted(boot_times)[len(boot_times) // 2] if boot_times else 0.05
                    time.sleep(rng.uniform(0.0, 1.2 * ready))
                else:
                    t0 = time.monotonic()
                    _wait_for_state(out_path, proc)
                    boot_times.append(time.monotonic() - t0)
                    time.sleep(rng.uniform(0.0, 0.12))
                proc.send_signal(signal.SIGKILL)
                proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            out.close()
        lines = _lines(out_path)
        where = f"seed {SEED} boot {boot}"
        states = [ln for ln in lines if ln.startswith("STATE ")]
        assert "Traceback" not in "\n".join(lines), (where, lines[-10:])
        if states:
            state = json.loads(states[0][6:])
            _check_state(state, hist, where)
            # The writer carries on from what it found, which may be a version whose
            # save or commit completed just before a kill, unreported.
            hist["cfg"] = state["cfg"]["v"] if state["cfg"] else 0
            hist["commit"] = state["tx"][0]["g"] if state["tx"][0] else 0
            totals["torn"] += state["stats"]["torn"]
            totals["dropped"] = state["stats"]["dropped"]
        elif final:
            pytest.fail(f"{where}: the checker printed no state: {lines[-5:]}")
        else:
            totals["recovery_cuts"] += 1
        for ln in lines:
            kind, *vals = ln.split()
            if kind == "A":
                got, want = int(vals[0]), int(vals[1])
                assert got == want > last_seq_reported, (where, ln)
                last_seq_reported = got
                hist["appended"][got] = boot
            elif kind == "S":
                hist["cfg"] = int(vals[0])
            elif kind == "C":
                hist["commit"] = int(vals[0])
            elif kind == "K":
                hist["ack"] = int(vals[0])
        hist["boots"] += 1
    print(f"power-cut campaign: seed {SEED}, {CUTS} kills, {len(hist['appended'])} appends "
          f"reported, {totals['recovery_cuts']} kills before recovery finished, "
          f"{totals['torn']} torn tails, {totals['dropped']} records dropped by eviction")
    # The campaign must have written, saved, committed, acked and evicted, or it tested
    # nothing.
    assert hist["cfg"] > 0 and hist["commit"] > 0 and hist["ack"] > 0
    assert totals["dropped"] > 0
