# Append-only journal: telemetry, events, logs, and later the water-ATM money ledger.
#
# Record: 12-byte header then payload.
#   magic u16 (bytes EC 4A) | payload length u16 | seq u32 | CRC-32 of header[0:8] + payload
# all little-endian. seq is strictly increasing and survives restarts through the records
# themselves plus the meta record (ack pointer, eviction floor), so it is never reused
# for a record that was ever durable.
#
# Records live in segment files <root>/<name>/j000001.log, j000002.log ... of at most
# `segment_bytes`; the oldest segment is deleted whole when `max_bytes` would be exceeded
# (eviction), and records evicted before the host acknowledged them are counted in
# `dropped` (persisted: telemetry reports it). RAM is bounded: a 12-byte header buffer and a
# 256-byte I/O buffer shared by all journals, and one 5-int entry per segment; nothing
# reads a whole segment.
import binascii
import os
import struct

from micropython import const

import flashio
from store import Store, StoreError, check_name

_MAGIC = const(0x4AEC)
_MAGIC_BYTES = b"\xecJ"
_HDR_LEN = const(12)
_BUF_LEN = const(256)
_SEQ_MAX = const(0xFFFFFFFF)
_SUFFIX = ".log"
_TMP = ".tmp"
# Segment index entry: [number, first seq, last seq, record count, size in bytes]
_NO = const(0)
_FIRST = const(1)
_LAST = const(2)
_COUNT = const(3)
_SIZE = const(4)


# One header and one I/O buffer for every journal: their operations never interleave (one
# thread; no method keeps data in them across calls), and a device opens five journals.
# Taken when the first journal opens, not at import (import is the frozen image's, the
# buffers are RAM).
_io = None


def _io_buffers():
    global _io
    if _io is None:
        buf = bytearray(_BUF_LEN)
        _io = (bytearray(_HDR_LEN), buf, memoryview(buf))
    return _io


def _segno(fname):
    if fname[:1] != "j" or not fname.endswith(_SUFFIX):
        return None
    digits = fname[1:-len(_SUFFIX)]
    return int(digits) if digits.isdigit() else None


class Journal:
    def __init__(self, root, name, max_bytes=65536, segment_bytes=4096, flash=None):
        check_name(name)
        if not 64 <= segment_bytes <= 65535 + _HDR_LEN:
            raise ValueError("journal %s: segment_bytes %d must be 64..65547" %
                             (name, segment_bytes))
        if max_bytes < 2 * segment_bytes:
            raise ValueError("journal %s: max_bytes %d must be at least 2 * segment_bytes "
                             "(%d) so eviction never deletes the segment being written" %
                             (name, max_bytes, 2 * segment_bytes))
        self.name = name
        self.dir = (root.rstrip("/") + "/" if root else "") + name
        self.flash = flash if flash is not None else flashio.get()
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes
        self.max_payload = segment_bytes - _HDR_LEN
        self._meta = Store(self.dir, self.flash)
        self._hdr, self._buf, self._mv = _io_buffers()
        self._seq = 0           # set by _valid_at
        self._f = None          # the active segment, open for append
        # Counters since this object was created, except `dropped` (persisted).
        self.evicted = 0
        self.torn = 0
        self.corrupt = 0
        self._open()

    # --- public API ---------------------------------------------------------------------

    def append(self, payload):
        """Write one record; when this returns the record is durable. Returns its seq."""
        n = len(payload)
        if n > self.max_payload:
            raise ValueError("journal %s: record of %d bytes exceeds the %d-byte limit "
                             "(segment_bytes - 12); split it or raise segment_bytes" %
                             (self.name, n, self.max_payload))
        if self._next > _SEQ_MAX:
            raise OverflowError("journal %s: sequence numbers exhausted" % self.name)
        if self._broken:
            self._open()    # a failed write may have left a torn tail: rescan first
        self._broken = True
        need = _HDR_LEN + n
        seg = self._segs[-1] if self._segs else None
        if seg is None or seg[_SIZE] + need > self.segment_bytes:
            self._close_file()
            seg = [seg[_NO] + 1 if seg else 1, 0, 0, 0, 0]
            self._segs.append(seg)
        self._make_room(need)
        seq = self._next
        head = struct.pack("<HHI", _MAGIC, n, seq)
        crc = binascii.crc32(payload, binascii.crc32(head))
        if self._f is None:
            self._f = open(self._path(seg[_NO]), "ab")
        # One write, so that a power cut tears at most this record.
        self.flash.write(self._f, head + struct.pack("<I", crc) + bytes(payload))
        self._f.flush()
        if not seg[_COUNT]:
            seg[_FIRST] = seq
        seg[_LAST] = seq
        seg[_COUNT] += 1
        seg[_SIZE] += need
        self._bytes += need
        self._next = seq + 1
        self._broken = False
        return seq

    def read(self, from_seq=None, max_count=16, max_bytes=1024):
        """Up to `max_count` records (seq, payload) with seq >= from_seq (default: the
        first unacknowledged), totalling at most `max_bytes` of payload (always at least
        one record if any is there, so an oversize record cannot stall delivery)."""
        out = []
        used = [0]

        def take(f, pos, seq, length):
            if out and used[0] + length > max_bytes:
                return False
            f.seek(pos)
            data = f.read(length)
            if len(data) != length:
                return False
            out.append((seq, data))
            used[0] += length
            return len(out) < max_count

        self._walk(from_seq, take)
        return out

    def read_into(self, out, prefix, from_seq=None, max_count=16, max_bytes=1024):
        """read() without an object per record: each record's payload is appended to the
        bytearray `out`, after whatever `prefix(out, seq)` appends (the caller's framing),
        while `out` grows by at most `max_bytes` (always one record if any is there).
        Into a bytearray with that much capacity left (emptied with `out[:] = b""`, which
        keeps it) nothing is allocated: an answer of many records needs no free block.
        Returns (records appended, seq of the last or None)."""
        start = len(out)
        got = [0, None]

        def take(f, pos, seq, length):
            mark = len(out)
            prefix(out, seq)
            if got[0] and len(out) - start + length > max_bytes:
                out[mark:] = b""
                return False
            mv = self._mv
            if length > _BUF_LEN:       # else _valid_at left the whole payload in mv
                f.seek(pos)
                left = length
                while left:
                    k = f.readinto(mv[:min(left, _BUF_LEN)])
                    if not k:
                        out[mark:] = b""
                        return False
                    out.extend(mv[:k])
                    left -= k
            else:
                out.extend(mv[:length])
            got[0] += 1
            got[1] = seq
            return got[0] < max_count

        self._walk(from_seq, take)
        return got[0], got[1]

    def _walk(self, from_seq, take):
        """Call take(file, payload position, seq, payload length) for each valid record
        with seq >= from_seq (default: the first unacknowledged), in order, until it
        returns False. Every record is checked (its CRC read through the shared buffer)
        before take sees it."""
        if from_seq is None:
            from_seq = self._ack + 1
        prev = 0
        for seg in self._segs:
            if not seg[_COUNT] or seg[_LAST] < from_seq:
                continue
            f = open(self._path(seg[_NO]), "rb")
            try:
                pos = 0
                size = seg[_SIZE]
                while pos + _HDR_LEN <= size:
                    # Every record is checked again, skipped ones too: a header damaged
                    # since open must not send the walk off course.
                    n = self._valid_at(f, pos, size, prev)
                    if n < 0:
                        pos = self._resync(f, pos + 1, size, prev)
                        if pos < 0:
                            break
                        continue
                    seq = self._seq
                    if seq >= from_seq and not take(f, pos + _HDR_LEN, seq, n - _HDR_LEN):
                        return
                    prev = seq
                    pos += n
            finally:
                f.close()

    def ack(self, upto_seq):
        """The host has stored every record up to `upto_seq`: they may be deleted."""
        if upto_seq <= self._ack:
            return
        if upto_seq >= self._next:
            raise ValueError("journal %s: ack %d is beyond the last record %d; the host "
                             "acknowledged records this device never wrote" %
                             (self.name, upto_seq, self._next - 1))
        self._ack = upto_seq
        self._save_meta()
        while len(self._segs) > 1 and self._segs[0][_LAST] <= upto_seq:
            self._drop_oldest()

    @property
    def first_seq(self):
        """Seq of the oldest stored record (last_seq + 1 when there is none)."""
        for seg in self._segs:
            if seg[_COUNT]:
                return seg[_FIRST]
        return self._next

    @property
    def last_seq(self):
        """Seq of the newest record ever written (0 if none)."""
        return self._next - 1

    @property
    def acked(self):
        return self._ack

    def pending_count(self):
        return sum(self._unacked(seg) for seg in self._segs)

    def stats(self):
        return {"first_seq": self.first_seq, "last_seq": self.last_seq, "acked": self._ack,
                "pending": self.pending_count(), "segments": len(self._segs),
                "bytes": self._bytes, "dropped": self._dropped, "evicted": self.evicted,
                "torn": self.torn, "corrupt": self.corrupt}

    @property
    def dropped(self):
        """Records evicted before they were acknowledged, over the journal's life."""
        return self._dropped

    def close(self):
        self._close_file()

    # --- open and recovery ----------------------------------------------------------------

    def _open(self):
        self._close_file()
        self._segs = []
        self._bytes = 0
        self._broken = False
        flashio.makedirs(self.dir)
        try:
            meta = self._meta.load("meta", None, lambda m: isinstance(m, dict)) or {}
        except StoreError:
            meta = {}       # both copies damaged: resend from the start rather than fail
            self.corrupt += 1
        self._ack = meta.get("ack", 0)
        self._dropped = meta.get("dropped", 0)
        self._floor = meta.get("floor", 0)
        nos = []
        for fname in os.listdir(self.dir):
            if fname.endswith(_TMP):
                self.flash.remove(self.dir + "/" + fname)   # an unfinished truncation
                continue
            no = _segno(fname)
            if no is not None:
                nos.append(no)
        nos.sort()
        gone = max(self._ack, self._floor)
        last = 0
        for i in range(len(nos)):
            is_last = i == len(nos) - 1
            path = self._path(nos[i])
            first, seg_last, count, end, size, bad = self._scan(path, last)
            self.corrupt += bad
            if count and end < size:
                if is_last:
                    self.torn += 1
                    self._truncate(path, end)
                    size = end
                else:
                    self.corrupt += 1
            if not count or (seg_last <= gone and not is_last):
                # Nothing valid, or an eviction/ack deletion a power cut interrupted.
                if not count and size:
                    if is_last:
                        self.torn += 1
                    else:
                        self.corrupt += 1
                self.flash.remove(path)
                if seg_last > last:
                    last = seg_last
                continue
            self._segs.append([nos[i], first, seg_last, count, size])
            self._bytes += size
            last = seg_last
        self._next = max(last, self._ack, self._floor) + 1
        self._make_room(0)      # max_bytes may have been lowered since the last run

    def _scan(self, path, min_seq):
        """(first, last, count, end of last valid record, file size, corrupt regions)."""
        f = open(path, "rb")
        try:
            size = f.seek(0, 2)
            pos = first = last = count = end = bad = 0
            while pos + _HDR_LEN <= size:
                n = self._valid_at(f, pos, size, min_seq)
                if n < 0:
                    nxt = self._resync(f, pos + 1, size, min_seq)
                    if nxt < 0:
                        break       # the rest is a torn tail (or damage at the end)
                    bad += 1
                    pos = nxt
                    continue
                if not count:
                    first = self._seq
                last = min_seq = self._seq
                count += 1
                pos += n
                end = pos
            return first, last, count, end, size, bad
        finally:
            f.close()

    def _valid_at(self, f, pos, size, min_seq):
        """Length of the valid record at `pos` (sets self._seq), or -1."""
        if pos + _HDR_LEN > size:
            return -1
        f.seek(pos)
        if f.readinto(self._hdr) != _HDR_LEN:
            return -1
        magic, length, seq, crc = struct.unpack("<HHII", self._hdr)
        # The length is bounded by the file, not by segment_bytes: records written under
        # a larger segment_bytes stay readable after that setting is lowered.
        if magic != _MAGIC or seq <= min_seq or pos + _HDR_LEN + length > size:
            return -1
        mv = self._mv
        c = binascii.crc32(memoryview(self._hdr)[:8])
        left = length
        while left:
            k = f.readinto(mv[:min(left, _BUF_LEN)])
            if not k:
                return -1
            c = binascii.crc32(mv[:k], c)
            left -= k
        if c != crc:
            return -1
        self._seq = seq
        return _HDR_LEN + length

    def _resync(self, f, pos, size, min_seq):
        """Position of the next valid record at or after `pos`, or -1."""
        while pos + _HDR_LEN <= size:
            f.seek(pos)
            k = f.readinto(self._buf)
            if k < 2:
                return -1
            j = self._buf.find(_MAGIC_BYTES, 0, k)
            if j < 0:
                pos += k - 1    # keep one byte: the magic may straddle the chunk
                continue
            if self._valid_at(f, pos + j, size, min_seq) > 0:
                return pos + j
            pos += j + 1
        return -1

    def _truncate(self, path, length):
        """Cut a torn tail: copy the valid prefix, then rename it over the segment
        (MicroPython files have no truncate(); the rename keeps the cut atomic)."""
        if not length:
            self.flash.remove(path)
            return
        tmp = path + _TMP
        src = open(path, "rb")
        try:
            dst = open(tmp, "wb")
            try:
                left = length
                while left:
                    k = src.readinto(self._mv[:min(left, _BUF_LEN)])
                    if not k:
                        raise OSError(5, "journal %s: segment shrank while cutting its "
                                         "torn tail" % self.name)
                    self.flash.write(dst, self._mv[:k])
                    left -= k
            finally:
                dst.close()
        finally:
            src.close()
        self.flash.rename(tmp, path)

    # --- eviction and meta ------------------------------------------------------------------

    def _make_room(self, need):
        while self._bytes + need > self.max_bytes and len(self._segs) > 1:
            seg = self._segs[0]
            self._dropped += self._unacked(seg)
            self.evicted += seg[_COUNT]
            if seg[_LAST] > self._floor:
                self._floor = seg[_LAST]
            # Persist the floor and the drop count before deleting: after a cut between
            # the two, open() finishes the deletion without counting the records twice.
            self._save_meta()
            self._drop_oldest()

    def _drop_oldest(self):
        seg = self._segs.pop(0)
        self._bytes -= seg[_SIZE]
        if flashio.size(self._path(seg[_NO])) >= 0:
            self.flash.remove(self._path(seg[_NO]))

    def _unacked(self, seg):
        # Exact while seqs are consecutive; a gap left by damaged records makes it an
        # upper bound.
        if not seg[_COUNT] or seg[_LAST] <= self._ack:
            return 0
        if seg[_FIRST] > self._ack:
            return seg[_COUNT]
        return min(seg[_COUNT], seg[_LAST] - self._ack)

    def _save_meta(self):
        self._meta.save("meta", {"ack": self._ack, "dropped": self._dropped,
                                 "floor": self._floor})

    def _path(self, no):
        return "%s/j%06d%s" % (self.dir, no, _SUFFIX)

    def _close_file(self):
        if self._f is not None:
            f = self._f
            self._f = None
            f.close()
