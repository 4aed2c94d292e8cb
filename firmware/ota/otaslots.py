# OTA slots on the device filesystem (SPEC 9.4, 9.5): the staging slot's files, install by one
# atomic store commit, confirmation and rollback, the update-result record.
#
# Staging file names: "~NAME" holds a file's transfer bytes as they arrive (any order);
# "+NAME" is a decompression or copy in progress; "NAME" appears only by rename once its
# SHA-256 matched the manifest. Manifest names cannot start with "~" or "+", so the three
# never collide, and after a power cut the slot tells on its own what is verified.
import binascii
import deflate
import gc
import os

from micropython import const

import flashio
import otaboot
from otaboot import LIST, SLOTS, file_digest, slot_dir

WORK = const(4112)      # the OTA working buffer: ota_manifest.HEAD + catalog.OTA_MANIFEST_MAX


class _Guarded:
    """A reader whose failure ends its stream and is remembered: a damaged deflate stream
    is a reason to report, while a failing flash write (the sink) must still raise."""

    def __init__(self, reader):
        self.reader = reader
        self.failed = False

    def readinto(self, buf):
        try:
            return self.reader.readinto(buf)
        except (OSError, ValueError):
            self.failed = True
            return 0


def hexd(digest):
    return binascii.hexlify(digest).decode()


class Slots:
    def __init__(self, root, flash=None):
        self.root = root
        self.flash = flash or flashio.get()
        self.st = otaboot.ota_store(root, self.flash)
        # One 4 KB buffer taken at boot, while the heap is in one piece: it holds an offered
        # manifest, and is handed back for the decompressor (about 2.4 KB in two blocks) while
        # a file inflates, then taken again -- a fragmented heap may have no such hole else.
        self.work = None
        flashio.makedirs(root + otaboot.BASE)
        self.boot = self.st.load("boot") or {}

    # -- state --------------------------------------------------------------------------
    @property
    def active(self):
        return self.boot.get("slot")

    @property
    def trial(self):
        return bool(self.boot.get("trial"))

    @property
    def floor(self):
        return self.boot.get("floor", 0)

    def staging(self):
        return SLOTS[1] if self.active == SLOTS[0] else SLOTS[0]

    def dir(self, slot):
        return slot_dir(self.root, slot)

    def active_digests(self):
        """{hex digest: name} of the active slot's files (what a delta need not resend)."""
        if self.active is None:
            return {}
        files = otaboot.read_list(self.root, self.st, self.active)[0] or ()
        return dict((d, n) for n, _, d in files)

    # -- staging files ------------------------------------------------------------------
    def clear(self, slot):
        """Remove every file of `slot` (never the active slot, nor a trial's fallback)."""
        if slot == self.active or (self.trial and slot == self.boot.get("prev")):
            raise OSError(1, "refusing to clear slot %s: it is in use" % slot)
        d = self.dir(slot)
        flashio.makedirs(d)
        for name in os.listdir(d):
            self.flash.remove(d + "/" + name)

    def write_at(self, f, pos, data):
        f.seek(pos)
        self.flash.write(f, data)

    def open_temp(self, slot, name):
        path = self.dir(slot) + "/~" + name
        try:
            return open(path, "r+b")
        except OSError:
            return open(path, "w+b")

    def temp_size(self, slot, name):
        return flashio.size(self.dir(slot) + "/~" + name)

    def has_final(self, slot, name, size):
        return flashio.size(self.dir(slot) + "/" + name) == size

    def drop_temp(self, slot, name, final=False):
        for pre in ("~", "+", "") if final else ("~", "+"):
            p = self.dir(slot) + "/" + pre + name
            if flashio.size(p) >= 0:
                self.flash.remove(p)

    def finalize(self, slot, name, size, digest, encoding):
        """Verify a fully received file (decompressing it first if deflated) and give it its
        name. Returns None, or the reason it failed (its temp files are then gone)."""
        d = self.dir(slot)
        src = d + "/~" + name
        if encoding is None:
            got = file_digest(src, size)
            ok = got is not None and got[1] == size and got[0] == digest
            if ok:
                self.flash.rename(src, d + "/" + name)
                return None
            self.drop_temp(slot, name)
            return "file %s does not match its SHA-256 (tampered or corrupted): discarded" \
                % name
        reason = self._inflate(src, d + "/+" + name, size, digest)
        if reason is None:
            self.flash.rename(d + "/+" + name, d + "/" + name)
            self.flash.remove(src)
            return None
        self.drop_temp(slot, name)
        return "file %s: %s: discarded" % (name, reason)

    def take_work(self):
        if self.work is None:
            self.work = bytearray(WORK)
        return self.work

    def _inflate(self, src, dst, size, digest):
        held = self.work is not None
        self.work = None
        gc.collect()
        try:
            return self._inflate_into(src, dst, size, digest)
        finally:
            if held:
                gc.collect()
                try:
                    self.work = bytearray(WORK)
                except MemoryError:
                    pass        # taken again at the next offer

    def _inflate_into(self, src, dst, size, digest):
        fin = open(src, "rb")
        fout = open(dst, "wb")
        try:
            z = _Guarded(deflate.DeflateIO(fin, deflate.ZLIB))
            got, n = otaboot.pump(z, size, lambda chunk: self.flash.write(fout, chunk))
        finally:
            fout.close()
            fin.close()
        if z.failed:
            return "the deflate stream is damaged"
        if n > size:    # a bomb or a lie: stopped at the size the manifest signed
            return "it inflates beyond its %d bytes" % size
        if n != size or got != digest:
            return "it does not match its SHA-256 (tampered or corrupted)"
        return None

    def copy_in(self, slot, name, size, digest):
        """Copy a file the active slot already has into `slot`, verifying it on the way."""
        dst = self.dir(slot) + "/+" + name
        fin = open(self.dir(self.active) + "/" + name, "rb")
        fout = open(dst, "wb")
        try:
            got, n = otaboot.pump(fin, size, lambda chunk: self.flash.write(fout, chunk))
        finally:
            fout.close()
            fin.close()
        if n != size or got != digest:
            self.flash.remove(dst)
            return False
        self.flash.rename(dst, self.dir(slot) + "/" + name)
        return True

    # -- switch, confirm, rollback --------------------------------------------------------
    def install(self, slot, seq, version, deadline, files):
        """Make `slot` the next image, in trial: its file list, then one atomic commit of the
        list's digest, the boot record and the pending result. `files`: [(name, size,
        digest bytes)]."""
        path = self.dir(slot) + "/" + LIST
        f = open(path, "wb")
        try:
            for n, s, d in files:
                self.flash.write(f, ("%s %d %s\n" % (n, s, hexd(d))).encode())
        finally:
            f.close()
        listed = hexd(file_digest(path)[0])
        boot = {"slot": slot, "prev": self.active, "trial": True, "run": 0,
                "floor": self.floor, "seq": seq, "ver": version, "dl": deadline}
        result = {"status": "pending", "seq": seq, "ver": version,
                  "msg": "version %s staged in slot %s; its trial boot is next"
                         % (version, slot)}
        self.st.commit({"slot_" + slot: {"seq": seq, "ver": version, "list": listed},
                        "boot": boot, "result": result})
        self.boot = boot

    def confirm(self, reason):
        b = dict(self.boot)
        b["trial"] = False
        b["run"] = 0
        b["prev"] = None
        b["floor"] = b.get("seq", 0)     # anti-rollback moves only now (SPEC 9.5)
        b.pop("why", None)
        self.st.commit({"boot": b, "result": {"status": "installed", "seq": b.get("seq"),
                                              "ver": b.get("ver"), "msg": reason}})
        self.boot = b

    def give_up(self, reason):
        """A trial that failed its health checks: the next boot rolls back, saying why."""
        b = dict(self.boot)
        b["why"] = reason
        b["run"] = 1
        self.st.save("boot", b)
        self.boot = b

    def result(self):
        return self.st.load("result") or {"status": "none", "msg": "no update so far"}
