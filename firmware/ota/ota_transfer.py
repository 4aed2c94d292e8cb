# Receiving an OTA transfer stream (SPEC 9.3): held ranges, chunks written into the staging
# slot, files verified as they complete, progress persisted at a bounded rate.
#
# The stream is every manifest file's transfer form, concatenated in manifest order. Files
# the device already has are "held" from the start, so a delta update and a resumed transfer
# are both just held ranges. Ranges live in RAM (at most _MAX_RANGES) and are persisted in
# the OTA store record "tx" every _PERSIST_BYTES of new data, when the link goes idle, and
# when the stream completes -- always after the data they claim was flushed.
from micropython import const

import otaslots

_MAX_RANGES = const(96)
_ACK_RANGES = const(8)
_PERSIST_BYTES = const(16384)

NEED = const(0)     # file state: not (fully) here
STAGED = const(1)   # verified, under its name in the staging slot
ACTIVE = const(2)   # identical file in the active slot: copied at install


def add_range(ranges, s, e):
    """Insert [s, e) into sorted disjoint `ranges`, merging; False if the list is full."""
    i = 0
    n = len(ranges)
    while i < n and ranges[i][1] < s:
        i += 1
    j = i
    while j < n and ranges[j][0] <= e:
        if ranges[j][0] < s:
            s = ranges[j][0]
        if ranges[j][1] > e:
            e = ranges[j][1]
        j += 1
    if j == i and n >= _MAX_RANGES:
        return False
    ranges[i:j] = [[s, e]]
    return True


def cut_range(ranges, s, e):
    """Remove [s, e) from `ranges`."""
    out = []
    for a, b in ranges:
        if b <= s or a >= e:
            out.append([a, b])
            continue
        if a < s:
            out.append([a, s])
        if b > e:
            out.append([e, b])
    ranges[:] = out


def covered(ranges, s, e):
    for a, b in ranges:
        if a <= s and e <= b:
            return True
    return False


def gaps(ranges, s, e):
    """The parts of [s, e) not in `ranges`, as a list of (start, end)."""
    out = []
    pos = s
    for a, b in ranges:
        if b <= pos:
            continue
        if a >= e:
            break
        if a > pos:
            out.append((pos, a))
        pos = b
        if pos >= e:
            break
    if pos < e:
        out.append((pos, e))
    return out


class Transfer:
    """One manifest's transfer into `slot`. `files`: the manifest's entries as tuples
    (name, size, digest, encoding or None, xsize)."""

    def __init__(self, slots, slot, digest, seq, version, deadline, files):
        self.slots = slots
        self.slot = slot
        self.digest = digest
        self.seq = seq
        self.version = version
        self.deadline = deadline
        self.files = files
        self.starts = []
        at = 0
        for f in files:
            self.starts.append(at)
            at += f[4]
        self.total = at
        self.state = bytearray(len(files))
        self.ranges = []
        self.fresh = 0          # bytes received since the last persist
        self.dirty = False
        self._f = None          # (index, open temp file)
        self.received = 0

    # -- setup --------------------------------------------------------------------------
    def begin(self, saved_ranges):
        """Rebuild held state from the slot's content and the persisted ranges (a hint,
        checked against the files: flash, not the record, is the truth)."""
        have = self.slots.active_digests()
        self.ranges = []
        for i in range(len(self.files)):
            name, size, digest, enc, xsize = self.files[i]
            s = self.starts[i]
            e = s + xsize
            if self.slots.has_final(self.slot, name, size):
                self.state[i] = STAGED
            elif otaslots.hexd(digest) in have and have[otaslots.hexd(digest)] == name:
                self.state[i] = ACTIVE
            elif covered(saved_ranges, s, e) and self.slots.temp_size(self.slot, name) == xsize:
                self.state[i] = NEED
                add_range(self.ranges, s, e)
                if self._finish(i) is None:
                    continue
                cut_range(self.ranges, s, e)
                continue
            else:
                self.state[i] = NEED
                tsize = self.slots.temp_size(self.slot, name)
                for a, b in saved_ranges:
                    a = max(a, s)
                    b = min(b, e, s + max(tsize, 0))
                    if a < b:
                        add_range(self.ranges, a, b)
                continue
            add_range(self.ranges, s, e)
        self.dirty = True

    def record(self):
        return {"d": otaslots.hexd(self.digest), "slot": self.slot, "ranges": self.ranges}

    def persist(self):
        if self._f is not None:
            self._f[1].flush()      # the data first: the record must never claim more
        self.slots.st.save("tx", self.record())
        self.fresh = 0
        self.dirty = False

    def close(self):
        if self._f is not None:
            self._f[1].close()
            self._f = None

    # -- progress -----------------------------------------------------------------------
    def cumulative(self):
        r = self.ranges
        return r[0][1] if r and r[0][0] == 0 else 0

    def above(self):
        r = self.ranges
        first = 1 if r and r[0][0] == 0 else 0
        return r[first:first + _ACK_RANGES]

    def complete(self):
        for s in self.state:
            if s == NEED:
                return False
        return True

    def held_files(self):
        return [i for i in range(len(self.state)) if self.state[i] != NEED]

    def missing(self):
        n = self.total
        for a, b in self.ranges:
            n -= b - a
        return n

    # -- data -----------------------------------------------------------------------------
    def chunk(self, off, data):
        """Take stream bytes at `off`; returns None, or the reason a file was discarded."""
        end = off + len(data)
        if not gaps(self.ranges, off, end):
            return None                         # a duplicate
        i = self._file_at(off)
        failure = None
        while i < len(self.files) and self.starts[i] < end:
            s = self.starts[i]
            e = s + self.files[i][4]
            if self.state[i] == NEED:
                for a, b in gaps(self.ranges, max(off, s), min(end, e)):
                    if not add_range(self.ranges, a, b):
                        break                   # too fragmented: the sender resends later
                    f = self._open(i)
                    self.slots.write_at(f, a - s, memoryview(data)[a - off:b - off])
                    self.received += b - a
                    self.fresh += b - a
                    self.dirty = True
                if covered(self.ranges, s, e):
                    try:
                        reason = self._finish(i)
                    except MemoryError:
                        reason = None   # held, verified later (retry(), install)
                    if reason is not None:
                        cut_range(self.ranges, s, e)
                        failure = reason
            i += 1
        if self.fresh >= _PERSIST_BYTES or (self.dirty and self.complete()):
            self.persist()
        return failure

    def _file_at(self, off):
        lo = 0
        hi = len(self.starts) - 1
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if self.starts[mid] <= off:
                lo = mid
            else:
                hi = mid - 1
        return lo

    def _open(self, i):
        if self._f is not None and self._f[0] == i:
            return self._f[1]
        self.close()
        self._f = (i, self.slots.open_temp(self.slot, self.files[i][0]))
        return self._f[1]

    def _finish(self, i):
        if self._f is not None and self._f[0] == i:
            self.close()
        name, size, digest, enc, _ = self.files[i]
        reason = self.slots.finalize(self.slot, name, size, digest, enc)
        if reason is None:
            self.state[i] = STAGED
        return reason

    # -- install ----------------------------------------------------------------------------
    def install(self):
        """Stage, verify and switch (SPEC 9.4); None, or the reason the slot is not ready."""
        reason = self.stage_all()
        if reason is not None:
            self.persist()
            return reason
        self.slots.install(self.slot, self.seq, self.version, self.deadline,
                           [(f[0], f[1], f[2]) for f in self.files])
        self.slots.st.delete("tx")
        return None

    def retry(self):
        """Verify files whose bytes are all here but whose check ran out of memory; returns
        the reason of a file that failed (its bytes are then missing again)."""
        failure = None
        for i in range(len(self.files)):
            s = self.starts[i]
            e = s + self.files[i][4]
            if self.state[i] == NEED and covered(self.ranges, s, e):
                reason = self._finish(i)
                if reason is not None:
                    cut_range(self.ranges, s, e)
                    self.dirty = True
                    failure = reason
        return failure

    def stage_all(self):
        """Copy the files the active slot had and verify every file once more; returns
        None or the reason the slot is not ready."""
        self.close()
        reason = self.retry()
        if reason is not None:
            return reason
        for i in range(len(self.files)):
            name, size, digest, _, _ = self.files[i]
            if self.state[i] == NEED:
                return "file %s is not complete; push the update again" % name
            if self.state[i] == ACTIVE:
                if not self.slots.has_final(self.slot, name, size) and \
                        not self.slots.copy_in(self.slot, name, size, digest):
                    return "file %s changed in the active slot; push the update again" % name
                self.state[i] = STAGED
            got = otaslots.file_digest(self.slots.dir(self.slot) + "/" + name, size)
            if got is None or got[1] != size or got[0] != digest:
                self.state[i] = NEED
                cut_range(self.ranges, self.starts[i], self.starts[i] + self.files[i][4])
                self.slots.drop_temp(self.slot, name, True)
                return "file %s no longer matches its SHA-256 in the staging slot; push " \
                       "the update again to resend it" % name
        return None


def open_transfer(slots, digest, seq, version, deadline, files):
    """The transfer of this manifest into the staging slot: resumed when the persisted record
    names it, else started afresh in an emptied slot."""
    slot = slots.staging()
    tx = Transfer(slots, slot, digest, seq, version, deadline, files)
    saved = slots.st.load("tx")
    if saved and saved.get("d") == otaslots.hexd(digest) and saved.get("slot") == slot:
        tx.begin(saved.get("ranges") or [])
    else:
        slots.clear(slot)            # another update's leftovers
        tx.begin([])
    tx.persist()
    return tx
