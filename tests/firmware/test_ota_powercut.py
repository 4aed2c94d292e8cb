"""Power cuts during an OTA, at every flash operation (brown-out: the write in progress is
torn, every later operation fails), inside the real MicroPython VM with the device's own
modules: staging and resume, the install's switch, the trial's first boot, confirmation and
rollback. After each cut the device reboots (boot.py's logic) and must run a verified image
-- the old or the new one, never a mix -- with the update result that says which and why;
then finishing the update must reach a consistent end state."""
import hashlib
import json
import os
import zlib
from pathlib import Path


from edgekit.testing import mp

SUPPORT = Path(__file__).resolve().parent / "support"     # brownout.BrownoutFlash

# Three files: one the new image keeps (copied from the active slot at install), one that
# changes and travels raw, one that changes and travels deflated.
random_bytes = os.urandom


def _spec(tmp_path):
    old = {"keep.mpy": random_bytes(700), "raw.mpy": random_bytes(900),
           "z.mpy": b"old text " * 120}
    new = {"keep.mpy": old["keep.mpy"], "raw.mpy": random_bytes(1500),
           "z.mpy": b"new text, compressible " * 150}
    (tmp_path / "old").mkdir()
    for name, data in old.items():
        (tmp_path / "old" / name).write_bytes(data)
    entries, stream = [], b""
    for name in sorted(new):
        data = new[name]
        form, enc = data, None
        if name == "z.mpy":
            c = zlib.compressobj(9, zlib.DEFLATED, 10)
            form, enc = c.compress(data) + c.flush(), "deflate"
        entries.append([name, len(data), hashlib.sha256(data).hexdigest(), enc, len(form)])
        stream += form
    (tmp_path / "stream.bin").write_bytes(stream)
    (tmp_path / "spec.json").write_text(json.dumps({
        "old": [[n, len(d), hashlib.sha256(d).hexdigest()] for n, d in sorted(old.items())],
        "new": entries}))


SCRIPT = r"""
import json, os, binascii
import brownout, flashio, otaboot, otaslots, ota_transfer
R = ROOT
spec = json.load(open(R + "/spec.json"))
OLD = [(n, s, binascii.unhexlify(d)) for n, s, d in spec["old"]]
NEW = [(n, s, binascii.unhexlify(d), e, x) for n, s, d, e, x in spec["new"]]
STREAM = open(R + "/stream.bin", "rb").read()
DIGEST = b"M" * 32
CHUNK = 256
bad = []
counts = {}


def plain():
    return flashio.PlainFlash()


def rmtree(p):
    try:
        names = os.listdir(p)
    except OSError:
        return
    for n in names:
        q = p + "/" + n
        if os.stat(q)[0] & 0x4000:
            rmtree(q)
        else:
            os.remove(q)
    os.rmdir(p)


def reset_to_old():
    rmtree(R + "/slots")
    s = otaslots.Slots(R, plain())
    flashio.makedirs(R + "/slots/a")
    for n, _, _ in OLD:
        data = open(R + "/old/" + n, "rb").read()
        f = open(R + "/slots/a/" + n, "wb")
        f.write(data)
        f.close()
    s.install("a", 1, "1.0.0", 30, OLD)
    otaboot.boot(root=R, path=[], flash=plain())
    otaslots.Slots(R, plain()).confirm("1.0.0 confirmed")


def stage(flash):
    s = otaslots.Slots(R, flash)
    tx = ota_transfer.open_transfer(s, DIGEST, 2, "2.0.0", 30, NEW)
    held = sum(b - a for a, b in tx.ranges)
    for off in range(0, len(STREAM), CHUNK):
        failure = tx.chunk(off, STREAM[off:off + CHUNK])
        if failure is not None:
            raise AssertionError(failure)
    reason = tx.install()
    if reason is not None:
        raise AssertionError(reason)
    return held


def state():
    st = otaboot.ota_store(R, plain())
    return st.load("boot") or {}, st.load("result") or {}


def check(where, slot):
    boot, result = state()
    st = otaboot.ota_store(R, plain())
    if slot is not None:
        why = otaboot.verify_slot(R, st, slot)
        if why is not None:
            bad.append("%s: booted slot %s does not verify: %s" % (where, slot, why))
    ver = (st.load("slot_" + slot) or {}).get("ver") if slot else None
    status, seq = result.get("status"), result.get("seq")
    if slot == "b":
        ok = ver == "2.0.0" and ((boot.get("trial") and status == "pending" and seq == 2) or
                                 (not boot.get("trial") and status == "installed"
                                  and seq == 2 and boot.get("floor") == 2))
    elif slot == "a":
        ok = ver == "1.0.0" and not boot.get("trial") and boot.get("floor") == 1 and (
            (status == "installed" and seq == 1) or (status == "rolled_back" and seq == 2))
    else:
        ok = False
    if not ok:
        bad.append("%s: slot %s version %s, boot %r, result %r" % (where, slot, ver, boot,
                                                                   result))
    key = "%s:%s:%s" % (where, slot, status)
    counts[key] = counts.get(key, 0) + 1
    return slot, status


def finish(where):
    # Drive the update to its end: resume staging if the switch did not happen, boot the
    # trial, confirm. A rolled-back update is an end state too.
    boot, result = state()
    if result.get("status") == "rolled_back":
        return
    if boot.get("slot") == "a" and not boot.get("trial"):
        stage(plain())
        otaboot.boot(root=R, path=[], flash=plain())
    boot, _ = state()
    if boot.get("trial"):       # the new image runs and passes its health checks
        otaslots.Slots(R, plain()).confirm("2.0.0 confirmed")
    slot = otaboot.boot(root=R, path=[], flash=plain())
    final = check(where + "/final", slot)
    if final not in (("b", "installed"), ("a", "rolled_back")):
        bad.append("%s: ended as %r" % (where, final))


# What each phase may leave after a cut: (slot booted, update result). A cut before the
# switch keeps the old image and its result; after it the trial runs (pending); a trial that
# ends by power loss is rolled back, never retried.
ALLOWED = {
    "stage": (("a", "installed"), ("b", "pending")),
    "first_boot": (("b", "pending"), ("a", "rolled_back")),
    "confirm": (("b", "installed"), ("a", "rolled_back")),
    "rollback": (("a", "rolled_back"),),
    "give_up": (("a", "rolled_back"),),
}


def campaign(where, setup, phase, limit=400):
    n = 1
    while n <= limit:
        setup()
        bf = brownout.BrownoutFlash(n)
        try:
            phase(bf)
        except OSError:
            pass
        if not bf.cut:
            break
        slot = otaboot.boot(root=R, path=[], flash=plain())     # power back on
        got = check(where, slot)
        if got not in ALLOWED[where]:
            bad.append("%s: cut at flash operation %d left %r" % (where, n, got))
        finish(where)
        n += 1
    counts[where + ":cuts"] = n - 1


def setup_staged():
    reset_to_old()
    stage(plain())


def setup_trial():
    setup_staged()
    otaboot.boot(root=R, path=[], flash=plain())


campaign("stage", reset_to_old, stage)
campaign("first_boot", setup_staged, lambda f: otaboot.boot(root=R, path=[], flash=f))
campaign("confirm", setup_trial, lambda f: otaslots.Slots(R, f).confirm("2.0.0 confirmed"))
campaign("rollback", setup_trial, lambda f: otaboot.boot(root=R, path=[], flash=f))
campaign("give_up", setup_trial, lambda f: otaslots.Slots(R, f).give_up("health failed"))

# Resume after a cut mid-transfer sends only what was not persisted as held.
reset_to_old()
bf = brownout.BrownoutFlash(10 ** 9)
s = otaslots.Slots(R, plain())
tx = ota_transfer.open_transfer(s, DIGEST, 2, "2.0.0", 30, NEW)
for off in range(0, len(STREAM) * 2 // 3, CHUNK):
    tx.chunk(off, STREAM[off:off + CHUNK])
tx.persist()
tx = None
resumed = ota_transfer.open_transfer(otaslots.Slots(R, plain()), DIGEST, 2, "2.0.0", 30, NEW)
counts["resume_held"] = sum(b - a for a, b in resumed.ranges)
counts["stream"] = len(STREAM)
print(json.dumps({"bad": bad, "counts": counts}))
"""


def test_power_cut_at_every_flash_operation_of_an_update(tmp_path):
    _spec(tmp_path)
    out = mp.run_json(f"ROOT = {str(tmp_path)!r}\n" + SCRIPT, heap="512K", timeout=600,
                      extra_paths=[SUPPORT])
    counts = out["counts"]
    assert out["bad"] == []
    for phase in ("stage", "first_boot", "confirm", "rollback", "give_up"):
        assert counts[phase + ":cuts"] >= 2, counts
    total = sum(v for k, v in counts.items() if k.endswith(":cuts"))
    assert total >= 60, counts
    # Both outcomes occur where they can: a cut before the switch keeps the old image, after
    # it the trial runs; a cut during confirmation either confirms or rolls back.
    assert counts.get("stage:a:installed") and counts.get("stage:b:pending"), counts
    assert counts.get("confirm:b:installed") and counts.get("confirm:a:rolled_back"), counts
    # What was persisted as held survives (the raw file's chunks and the kept file).
    assert counts["resume_held"] >= counts["stream"] * 2 // 3 - 256, counts
