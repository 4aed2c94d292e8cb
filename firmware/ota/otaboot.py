# What boot.py runs before anything else (SPEC 9.4, 9.5): read the OTA boot record, end a
# trial that did not confirm, verify the active slot's files, and put that slot first on
# sys.path. It is part of the board image and is never updated over the air, like a
# bootloader; boot.py drops it (and the store modules) from sys.modules afterwards, so the
# image being booted imports its own versions.
#
# Boot record (OTA store record "boot", JSON):
#   slot   "a" | "b" | None (None: the board's own image)
#   prev   the slot to return to if a trial fails
#   trial  True from install until the new image confirms
#   run    1 once a trial boot has started: a second boot in trial means the first one ended
#          without confirming (crash, watchdog, power loss, failed health checks)
#   floor  the anti-rollback floor: sequence number of the last confirmed image
#   seq, ver, dl   the active image's sequence, version and trial deadline (s)
#   why    set by a trial that gave up, so the rollback can say why
import binascii
import hashlib
import sys

import flashio
import store as store_mod

SLOTS = ("a", "b")
LIST = ".list"          # a slot's file list; manifest names never start with "."
_BUF = bytearray(512)
# Modules boot.py loaded to do its job: forgotten again before the image is imported.
MODULES = ("otaboot", "store", "flashio")


def root_of(hal=None):
    if hal is None:
        import hal
    return hal.storage_root().rstrip("/")


# Not "/ota": a folder on the import path named like a module shadows it (MicroPython
# imports a bare directory as a namespace package, and "" -- the flash root -- comes first).
BASE = "/slots"


def ota_store(root, flash=None):
    return store_mod.Store(root + BASE + "/state", flash)


def slot_dir(root, slot):
    return root + BASE + "/" + slot


def pump(reader, limit=None, sink=None):
    """Read `reader` to its end through the one preallocated buffer, hashing, and hand each
    chunk to `sink` (a flash write) if given -> (SHA-256, bytes read). Stops once more than
    `limit` bytes came (a file that grew, a deflate bomb): the count then says so."""
    h = hashlib.sha256()
    mv = memoryview(_BUF)
    n = 0
    while True:
        k = reader.readinto(_BUF)
        if not k:
            break
        n += k
        if limit is not None and n > limit:
            break
        h.update(mv[:k])
        if sink is not None:
            sink(mv[:k])
    return h.digest(), n


def file_digest(path, limit=None):
    """(SHA-256, size) of a file, reading through one preallocated buffer; None if missing."""
    try:
        f = open(path, "rb")
    except OSError:
        return None
    try:
        return pump(f, limit)
    finally:
        f.close()


def read_list(root, st, slot):
    """([(name, size, sha256 hex)], None) of a slot whose file list matches the SHA-256 its
    store record holds, else (None, reason). The list is a file of "name size digest" lines
    (written line by line: a JSON record of 20+ digests needs one 2.5 KB block, which a
    fragmented 110 KB heap may not have)."""
    rec = st.load("slot_" + slot)
    if not rec:
        return None, "slot %s has no record" % slot
    path = slot_dir(root, slot) + "/" + LIST
    got = file_digest(path)
    if got is None or binascii.hexlify(got[0]).decode() != rec.get("list"):
        return None, "slot %s: its file list is missing or damaged" % slot
    out = []
    f = open(path)
    try:
        for line in f:
            name, size, digest = line.split()
            out.append((name, int(size), digest))
    finally:
        f.close()
    return out, None


def verify_slot(root, st, slot):
    """None when every file of the slot matches its list, else a reason (text)."""
    files, bad = read_list(root, st, slot)
    if bad is not None:
        return bad
    d = slot_dir(root, slot)
    for name, size, digest in files:
        got = file_digest(d + "/" + name, size)
        if got is None:
            return "slot %s: file %s is missing" % (slot, name)
        if got[1] != size or binascii.hexlify(got[0]).decode() != digest:
            return "slot %s: file %s does not match its SHA-256" % (slot, name)
    return None


def _fallback(root, st, rec, reason):
    # Back to the previous slot (if it still verifies), else the board's own image.
    prev = rec.get("prev")
    target = None
    info = {"seq": 0, "ver": None}
    if prev and verify_slot(root, st, prev) is None:
        target = prev
        info = st.load("slot_" + prev) or info
    new = {"slot": target, "prev": None, "trial": False, "run": 0,
           "floor": rec.get("floor", 0), "seq": info.get("seq", 0), "ver": info.get("ver"),
           "dl": 0}
    result = {"status": "rolled_back", "msg": reason, "seq": rec.get("seq"),
              "ver": rec.get("ver")}
    st.commit({"boot": new, "result": result})
    return target


def boot(hal=None, path=None, root=None, flash=None):
    """Decide the image and set sys.path; returns the slot booted (None: board image)."""
    if root is None:
        root = root_of(hal)
    st = ota_store(root, flash)
    rec = st.load("boot")
    if not rec:
        return None
    slot = rec.get("slot")
    if rec.get("trial"):
        if rec.get("run"):
            slot = _fallback(root, st, rec, rec.get("why") or
                             "version %s did not confirm on its trial boot (crash, reset, "
                             "power loss or failed health checks): rolled back"
                             % rec.get("ver"))
        else:
            rec["run"] = 1
            st.save("boot", rec)
    if slot is not None:
        bad = verify_slot(root, st, slot)
        if bad is not None:
            rec = st.load("boot")
            slot = _fallback(root, st, rec, bad + ": not booted, rolled back")
    if slot is not None:
        (path if path is not None else sys.path).insert(0, slot_dir(root, slot))
    return slot
