"""firmware/storage/store.py in the real MicroPython VM: one VM run executes every case, the
host checks each case's outcome in its own test."""
import json

import pytest

from edgekit.testing import mp

CASES = r'''
import json, os, store, flashio

ROOT = %(root)r


def case(fn):
    # One JSON line per case, printed at once: a single document of every result would
    # need one large allocation on a fragmented board-sized heap.
    try:
        res = fn()
    except Exception as e:
        res = {"error": "%%s: %%s" %% (type(e).__name__, e)}
    print(json.dumps([fn.__name__, res]))
    return fn


def fresh(sub, **kw):
    return store.Store(ROOT + "/" + sub, flashio.PlainFlash(), **kw)


def reopen(s, **kw):
    return store.Store(s.root, flashio.PlainFlash(), **kw)


def rewrite(path, data):
    f = open(path, "wb")
    f.write(data)
    f.close()


def slurp(path):
    f = open(path, "rb")
    d = f.read()
    f.close()
    return d


def flip(path, offset):
    d = bytearray(slurp(path))
    d[offset] ^= 0x40
    rewrite(path, d)


def saved2(sub):
    s = fresh(sub)
    s.save("cfg", {"v": 1})
    s.save("cfg", {"v": 2})
    return s


def fallback(s):
    r = reopen(s)
    try:
        v = r.load("cfg")
    except store.StoreError as e:
        return {"error": str(e)}
    return {"v": v, "src": r.last_source, "fallbacks": r.fallbacks}


@case
def roundtrip():
    s = fresh("rt")
    obj = {"a": 1, "b": [1, 2], "s": "x"}
    s.save("cfg", obj)
    s.save_bytes("raw", b"\x00\xff")
    return {"cfg": s.load("cfg"), "src": s.last_source, "raw": list(s.load_bytes("raw")),
            "fallbacks": s.fallbacks, "reopen": reopen(s).load("cfg"), "obj": obj}


@case
def missing():
    s = fresh("miss")
    return {"default": s.load("nope", default="D"), "src": s.last_source,
            "bytes": s.load_bytes("nope"), "exists": s.exists("nope")}


@case
def bad_crc():
    s = saved2("crc")
    flip(s.root + "/cfg", 14)
    r = reopen(s)
    first = r.load("cfg")
    second = r.load("cfg")
    return {"v": [first, second], "src": r.last_source, "fallbacks": r.fallbacks}


@case
def truncated():
    s = saved2("trunc")
    rewrite(s.root + "/cfg", slurp(s.root + "/cfg")[:7])
    return fallback(s)


@case
def header_only():
    s = saved2("hdr")
    rewrite(s.root + "/cfg", slurp(s.root + "/cfg")[:12])
    return fallback(s)


@case
def extra_bytes():
    s = saved2("extra")
    rewrite(s.root + "/cfg", slurp(s.root + "/cfg") + b"x")
    return fallback(s)


@case
def bad_magic():
    s = saved2("magic")
    flip(s.root + "/cfg", 0)
    return fallback(s)


@case
def missing_current():
    s = saved2("gone")
    os.remove(s.root + "/cfg")
    r = fallback(s)
    r["names"] = reopen(s).names()
    return r


@case
def both_bad():
    s = saved2("both")
    flip(s.root + "/cfg", 14)
    flip(s.root + "/cfg.bak", 14)
    return fallback(s)


@case
def validator():
    s = saved2("valid")
    r = reopen(s)
    out = {"reject_false": r.load("cfg", validate=lambda o: o["v"] == 1), "src": r.last_source}

    def raising(o):
        if o["v"] != 1:
            raise ValueError("v")
    out["reject_raise"] = r.load("cfg", validate=raising)
    try:
        r.load("cfg", validate=lambda o: False)
        out["none_valid"] = "no error"
    except store.StoreError as e:
        out["none_valid"] = str(e)
    out["bytes_validator"] = r.load_bytes("cfg", validate=lambda d: b"1" in d) is not None
    out["fallbacks"] = r.fallbacks
    return out


@case
def undecodable():
    s = fresh("undec")
    s.save("cfg", {"v": 1})
    s.save_bytes("cfg", b"{not json")
    return fallback(s)


@case
def custom_codec():
    s = fresh("codec", encode=lambda o: ("<%%s>" %% o).encode(), decode=lambda b: b.decode())
    s.save("a", "hello")
    s.save("b", 7, encode=lambda o: bytes([o]))
    return {"a": s.load("a"), "a_raw": s.load_bytes("a").decode(),
            "b": s.load("b", decode=lambda d: d[0])}


@case
def torn_new_ignored():
    s = fresh("tornnew")
    s.save("cfg", {"v": 1})
    rewrite(s.root + "/cfg.new", store.pack(b'{"v": 2}')[:9])
    r = reopen(s)
    return {"v": r.load("cfg"), "src": r.last_source, "rolled_back": r.rolled_back,
            "files": sorted(os.listdir(s.root))}


@case
def new_between_renames():
    # A save cut between its two renames: current moved to .bak, .new complete.
    s = fresh("between")
    s.save("cfg", {"v": 1})
    os.rename(s.root + "/cfg", s.root + "/cfg.bak")
    rewrite(s.root + "/cfg.new", store.pack(b'{"v": 2}'))
    r = reopen(s)
    return {"v": r.load("cfg"), "src": r.last_source, "rolled_forward": r.rolled_forward,
            "files": sorted(os.listdir(s.root))}


@case
def new_before_rename():
    s = fresh("before")
    s.save("cfg", {"v": 1})
    rewrite(s.root + "/cfg.new", store.pack(b'{"v": 2}'))
    r = reopen(s)
    return {"v": r.load("cfg"), "rolled_back": r.rolled_back,
            "files": sorted(os.listdir(s.root))}


@case
def commit_basic():
    s = fresh("commit")
    s.commit({"a": 1, "b": 2, "c": 3})
    s.commit({"a": 10, "b": 20, "c": 30})
    r = reopen(s)
    return {"vals": [r.load(n) for n in ("a", "b", "c")], "names": r.names(),
            "files": sorted(os.listdir(s.root))}


@case
def commit_marker_rolls_forward():
    s = fresh("fwd")
    s.commit({"a": 1, "b": 2})
    rewrite(s.root + "/a.tx", store.pack(b"11"))
    rewrite(s.root + "/b.tx", store.pack(b"22"))
    rewrite(s.root + "/_commit", store.pack(b"a\nb"))
    r = reopen(s)
    return {"vals": [r.load("a"), r.load("b")], "rolled_forward": r.rolled_forward,
            "files": sorted(os.listdir(s.root))}


@case
def commit_half_applied_rolls_forward():
    # Cut after `a` was installed and `b` moved to .bak, before `b.tx` was renamed.
    s = fresh("half")
    s.commit({"a": 1, "b": 2})
    os.rename(s.root + "/a", s.root + "/a.bak")
    rewrite(s.root + "/a", store.pack(b"11"))
    os.rename(s.root + "/b", s.root + "/b.bak")
    rewrite(s.root + "/b.tx", store.pack(b"22"))
    rewrite(s.root + "/_commit", store.pack(b"a\nb"))
    r = reopen(s)
    return {"vals": [r.load("a"), r.load("b")], "files": sorted(os.listdir(s.root))}


@case
def commit_without_marker_rolls_back():
    s = fresh("back")
    s.commit({"a": 1, "b": 2})
    rewrite(s.root + "/a.tx", store.pack(b"11"))
    rewrite(s.root + "/b.tx", store.pack(b"22"))
    rewrite(s.root + "/_commit.new", store.pack(b"a\nb")[:10])
    r = reopen(s)
    return {"vals": [r.load("a"), r.load("b")], "rolled_back": r.rolled_back,
            "files": sorted(os.listdir(s.root))}


@case
def corrupt_current_not_backed_up():
    s = saved2("keepgood")
    flip(s.root + "/cfg", 14)
    r = reopen(s)
    r.save("cfg", {"v": 3})
    after_save = r.load("cfg")
    flip(s.root + "/cfg", 14)
    return {"after_save": after_save, "fallback": fallback(s)}


@case
def delete_names_exists():
    s = fresh("names")
    for n in ("b", "a", "c-1", "d_2"):
        s.save(n, n)
    s.save("a", "again")
    s.delete("b")
    s.delete("never")
    out = {"names": s.names(), "exists_b": s.exists("b"), "exists_a": s.exists("a"),
           "load_b": s.load("b", default="gone")}
    os.remove(s.root + "/a")        # only a.bak left: still a record, via fallback
    out["names_bak_only"] = reopen(s).names()
    out["files"] = sorted(os.listdir(s.root))
    return out


@case
def bad_names():
    out = []
    for n in ("", "_commit", "a.b", "a/b", "x" * 33, 5, "sp ace"):
        try:
            store.check_name(n)
            out.append("accepted")
        except ValueError as e:
            out.append(str(e))
    s = fresh("badn")
    try:
        s.save("cfg.bak", 1)
        out.append("accepted")
    except ValueError as e:
        out.append(str(e))
    return out


@case
def limits():
    s = fresh("lim", max_record=100)
    out = {}
    try:
        s.save_bytes("x", b"a" * 101)
        out["big"] = "accepted"
    except store.StoreError as e:
        out["big"] = str(e)
    try:
        s.save_bytes("x", "text")
        out["type"] = "accepted"
    except TypeError as e:
        out["type"] = str(e)
    s.save_bytes("x", b"a" * 100)
    out["exact"] = len(s.load_bytes("x"))
    out["files"] = sorted(os.listdir(s.root))
    return out


class Recorder(flashio.PlainFlash):
    def __init__(self, root):
        flashio.PlainFlash.__init__(self)
        self.root = root + "/"
        self.log = []

    def _n(self, p):
        return p.replace(self.root, "")

    def write(self, f, data):
        self.log.append("write")
        flashio.PlainFlash.write(self, f, data)

    def rename(self, a, b):
        self.log.append("rename %%s %%s" %% (self._n(a), self._n(b)))
        flashio.PlainFlash.rename(self, a, b)

    def remove(self, p):
        self.log.append("remove %%s" %% self._n(p))
        flashio.PlainFlash.remove(self, p)


@case
def flash_ops():
    root = ROOT + "/ops"
    fl = Recorder(root)
    s = store.Store(root, fl)
    s.save("cfg", {"v": 1})
    first = list(fl.log)
    del fl.log[:]
    s.save("cfg", {"v": 2})
    second = list(fl.log)
    del fl.log[:]
    s.commit({"a": 1, "cfg": 3})
    commit = list(fl.log)
    return {"first": first, "second": second, "commit": commit, "writes": fl.writes,
            "ops": len(first) + len(second) + len(commit)}


@case
def nested_root():
    s = store.Store(ROOT + "/n1/n2/n3", flashio.PlainFlash())
    s.save("x", [1])
    return reopen(s).load("x")

'''


@pytest.fixture(scope="module")
def r(tmp_path_factory):
    root = tmp_path_factory.mktemp("store")
    out = mp.run(CASES % {"root": str(root)})
    return dict(json.loads(line) for line in out.splitlines() if line.startswith("["))


def ok(r, name):
    res = r[name]
    assert not (isinstance(res, dict) and "error" in res and len(res) == 1), res
    return res


def test_roundtrip(r):
    res = ok(r, "roundtrip")
    assert res["cfg"] == res["obj"] == res["reopen"]
    assert res["src"] == "current" and res["fallbacks"] == 0
    assert res["raw"] == [0, 255]


def test_missing_record_is_default_not_error(r):
    res = ok(r, "missing")
    assert res == {"default": "D", "src": None, "bytes": None, "exists": False}


@pytest.mark.parametrize("name", ["truncated", "header_only", "extra_bytes", "bad_magic",
                                  "missing_current", "undecodable"])
def test_bad_current_falls_back_to_backup(r, name):
    res = ok(r, name)
    assert res["v"] == {"v": 1}, res
    assert res["src"] == "backup" and res["fallbacks"] == 1


def test_crc_mismatch_falls_back_and_counts_every_fallback(r):
    res = ok(r, "bad_crc")
    assert res["v"] == [{"v": 1}, {"v": 1}]
    assert res["src"] == "backup" and res["fallbacks"] == 2


def test_backup_only_record_is_listed(r):
    assert ok(r, "missing_current")["names"] == ["cfg"]


def test_both_copies_bad_raises_naming_the_record(r):
    err = r["both_bad"]["error"]
    assert "record cfg" in err and "save it again or delete it" in err


def test_validator_can_reject_a_copy(r):
    res = ok(r, "validator")
    assert res["reject_false"] == {"v": 1} and res["src"] == "backup"
    assert res["reject_raise"] == {"v": 1}
    assert "no valid copy" in res["none_valid"]
    assert res["bytes_validator"] is True
    assert res["fallbacks"] == 3


def test_custom_codec(r):
    assert ok(r, "custom_codec") == {"a": "<hello>", "a_raw": "<hello>", "b": 7}


def test_torn_new_file_is_ignored_and_cleaned(r):
    res = ok(r, "torn_new_ignored")
    assert res["v"] == {"v": 1} and res["src"] == "current"
    assert res["rolled_back"] == 1 and "cfg.new" not in res["files"]


def test_save_cut_between_renames_rolls_forward(r):
    res = ok(r, "new_between_renames")
    assert res["v"] == {"v": 2} and res["src"] == "current" and res["rolled_forward"] == 1
    assert res["files"] == ["cfg", "cfg.bak"]


def test_save_cut_before_rename_keeps_old(r):
    res = ok(r, "new_before_rename")
    assert res["v"] == {"v": 1} and res["rolled_back"] == 1
    assert "cfg.new" not in res["files"]


def test_commit(r):
    res = ok(r, "commit_basic")
    assert res["vals"] == [10, 20, 30]
    assert res["names"] == ["a", "b", "c"]
    assert res["files"] == ["a", "a.bak", "b", "b.bak", "c", "c.bak"]


def test_commit_marker_rolls_forward(r):
    res = ok(r, "commit_marker_rolls_forward")
    assert res["vals"] == [11, 22] and res["rolled_forward"] == 1
    assert not [f for f in res["files"] if f.endswith(".tx") or f.startswith("_")]


def test_commit_half_applied_rolls_forward(r):
    res = ok(r, "commit_half_applied_rolls_forward")
    assert res["vals"] == [11, 22]
    assert res["files"] == ["a", "a.bak", "b", "b.bak"]


def test_commit_without_marker_rolls_back(r):
    res = ok(r, "commit_without_marker_rolls_back")
    assert res["vals"] == [1, 2] and res["rolled_back"] == 3
    assert res["files"] == ["a", "b"]


def test_corrupt_current_never_replaces_the_good_backup(r):
    res = ok(r, "corrupt_current_not_backed_up")
    assert res["after_save"] == {"v": 3}
    # v2 was corrupt when v3 was saved: the backup must still be v1, not the broken v2.
    assert res["fallback"]["v"] == {"v": 1} and res["fallback"]["src"] == "backup"


def test_delete_names_exists(r):
    res = ok(r, "delete_names_exists")
    assert res["names"] == ["a", "c-1", "d_2"]
    assert res["exists_b"] is False and res["exists_a"] is True
    assert res["load_b"] == "gone"
    assert res["names_bak_only"] == ["a", "c-1", "d_2"]
    assert not [f for f in res["files"] if f.startswith("b")]


def test_bad_names_are_refused_with_advice(r):
    res = ok(r, "bad_names")
    assert len(res) == 8
    for msg in res:
        assert msg != "accepted" and msg.startswith("record name"), msg


def test_size_and_type_limits(r):
    res = ok(r, "limits")
    assert "101 bytes exceed the 100-byte limit" in res["big"]
    assert "payload must be bytes" in res["type"]
    assert res["exact"] == 100
    assert res["files"] == ["x"]


def test_every_change_goes_through_the_flash_seam(r):
    res = ok(r, "flash_ops")
    assert res["first"] == ["write", "rename cfg.new cfg"]
    assert res["second"] == ["write", "rename cfg cfg.bak", "rename cfg.new cfg"]
    assert res["commit"] == ["write", "write", "write", "rename _commit.new _commit",
                             "rename a.tx a", "rename cfg cfg.bak", "rename cfg.tx cfg",
                             "remove _commit"]
    assert res["writes"] == res["ops"]


def test_nested_root_is_created(r):
    assert ok(r, "nested_root") == [1]
