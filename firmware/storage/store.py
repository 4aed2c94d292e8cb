# Atomic small records on flash (identity, certificate, trust anchors, config, counters).
#
# Each record is one file: a 12-byte header (magic+version, payload length, CRC-32 over
# header and payload) then the payload. Files of record `cfg`:
#   cfg       the current copy
#   cfg.bak   the previous good copy (load falls back to it, and says so)
#   cfg.new   a single save in progress
#   cfg.tx    a multi-record commit in progress (applied only once `_commit` exists)
#   _commit   the commit marker: the list of names of a committed transaction
#
# Why write-new-then-rename rather than two slots with sequence numbers: rename over an
# existing file is atomic on littlefs and POSIX, so at every instant each name resolves to
# a complete file, and a multi-record commit reduces to the same renames behind a marker.
# Two slots would save a rename per save, but a committed transaction would then have to
# be told apart from a torn one by a transaction id in every slot, and that id would need
# its own crash-safe counter. See docs/flash-wear.md for what each save costs.
#
# Power can fail at any instruction. The invariants recovery relies on:
#   - `x.new` / `x.tx` are renamed into place only after they were written and closed;
#   - `_commit` appears (by rename) only after every `x.tx` of its transaction is closed;
#   - a save moves the current copy to `x.bak` only if it is valid, so a corrupt current
#     copy never replaces the last good one.
import binascii
import json
import os
import struct

import flashio

_MAGIC = b"EKS\x01"     # "edgekit store", format version 1
_HDR = "<4sII"          # magic, payload length, CRC-32
_HDR_LEN = 12
_BAK = ".bak"
_NEW = ".new"
_TX = ".tx"
_MARK = "_commit"
_NAME_MAX = 32
_CHUNK = 128

CURRENT = "current"
BACKUP = "backup"


# The CRC check's read buffer, shared by every Store (a device has one per journal too):
# taken at the first check, not at import.
_buf = None


def _chunk():
    global _buf
    if _buf is None:
        _buf = memoryview(bytearray(_CHUNK))
    return _buf


class StoreError(Exception):
    """A record exists but no copy of it is readable; or a name or size is invalid."""


def _default_encode(obj):
    return json.dumps(obj).encode()


def _default_decode(data):
    return json.loads(data)


_NAME_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-"


def check_name(name):
    """Raise ValueError unless `name` is 1..32 of [A-Za-z0-9_-], not starting with '_'."""
    if not isinstance(name, str) or not 0 < len(name) <= _NAME_MAX or name[0] == "_":
        raise ValueError("record name %r: use 1..32 letters, digits, '_' or '-', "
                         "not starting with '_'" % (name,))
    # strip() leaves nothing iff every character is allowed; iterating the str would intern
    # each character as a qstr (a new 1.3 KB qstr pool, at any moment, on a fragmented heap).
    if name.strip(_NAME_CHARS):
        raise ValueError("record name %r: only letters, digits, '_' or '-' are allowed"
                         % (name,))


def pack(data):
    """Header + payload, as written to flash."""
    head = _MAGIC + struct.pack("<I", len(data))
    crc = binascii.crc32(data, binascii.crc32(head))
    return head + struct.pack("<I", crc) + bytes(data)


class Store:
    """Records under the directory `root`; every persistent write goes through `flash`.

    `last_source` tells which copy the last load used (CURRENT, BACKUP, or None when the
    record does not exist); `fallbacks` counts loads that had to use the backup copy.
    """

    def __init__(self, root, flash=None, encode=None, decode=None, max_record=16384):
        self.root = root
        self.flash = flash if flash is not None else flashio.get()
        self.encode = encode or _default_encode
        self.decode = decode or _default_decode
        self.max_record = max_record
        self.last_source = None
        self.fallbacks = 0
        self.rolled_forward = 0     # committed transactions completed by recovery
        self.rolled_back = 0        # staged files of unfinished saves/commits discarded
        self._pre = root.rstrip("/") + "/" if root else ""
        # Recovery runs before the first operation, and again after any operation that
        # raised (a failed write leaves the same files a power cut does).
        self._dirty = True

    # --- public API ---------------------------------------------------------------------

    def save_bytes(self, name, data):
        check_name(name)
        self._check_data(name, data)
        self._begin()
        p = self._pre + name
        if flashio.size(p + _NEW) >= 0:
            self.flash.remove(p + _NEW)
        self._write(p + _NEW, data)
        self._install(p, p + _NEW)
        self._dirty = False

    def load_bytes(self, name, validate=None):
        """The payload of `name`, or None if the record does not exist.

        `validate(data)` may reject a copy (return False or raise ValueError); the backup
        is tried next. Raises StoreError when copies exist but none is valid.
        """
        return self._load(name, validate, False)

    def save(self, name, obj, encode=None):
        self.save_bytes(name, (encode or self.encode)(obj))

    def load(self, name, default=None, validate=None, decode=None):
        """The decoded record, or `default` if it does not exist (see load_bytes)."""
        obj = self._load(name, validate, decode or self.decode)
        return default if self.last_source is None else obj

    def commit(self, records, encode=None):
        """Save every name -> obj of `records` so that all or none survive a power cut."""
        enc = encode or self.encode
        self.commit_bytes(dict((k, enc(v)) for k, v in records.items()))

    def commit_bytes(self, records):
        names = sorted(records)
        if not names:
            return
        for name in names:
            check_name(name)
            self._check_data(name, records[name])
        self._begin()
        for name in names:
            p = self._pre + name
            if flashio.size(p + _TX) >= 0:
                self.flash.remove(p + _TX)
            self._write(p + _TX, records[name])
        mark = self._pre + _MARK
        self._write(mark + _NEW, "\n".join(names).encode())
        self.flash.rename(mark + _NEW, mark)    # the commit point
        self._apply(names)
        self._dirty = False

    def delete(self, name):
        check_name(name)
        self._begin()
        p = self._pre + name
        # The current copy goes last: until it is gone the record is intact, and once it
        # is gone no backup remains to resurrect it.
        for path in (p + _NEW, p + _TX, p + _BAK, p):
            if flashio.size(path) >= 0:
                self.flash.remove(path)
        self._dirty = False

    def exists(self, name):
        check_name(name)
        self._ready()
        p = self._pre + name
        return flashio.size(p) >= 0 or flashio.size(p + _BAK) >= 0

    def names(self):
        self._ready()
        out = []
        for f in self._listdir():
            base = f[:-len(_BAK)] if f.endswith(_BAK) else f
            if "." not in base and base[:1] != "_" and base not in out:
                out.append(base)
        out.sort()
        return out

    def recover(self):
        """Finish or undo whatever a power cut interrupted (done automatically)."""
        flashio.makedirs(self.root)
        files = self._listdir()
        mark = self._pre + _MARK
        if _MARK in files:
            names = self._marked_names(mark)
            if names:
                self._apply(names)
                self.rolled_forward += 1
            else:
                # Written by rename only after it was complete, so it can be invalid only
                # through damage: the transaction cannot be trusted, so roll it back.
                self.flash.remove(mark)
        for f in files:
            path = self._pre + f
            if f.endswith(_TX) or f == _MARK + _NEW:
                if flashio.size(path) >= 0:   # _apply may have consumed it
                    self.flash.remove(path)
                    self.rolled_back += 1
            elif f.endswith(_NEW):
                p = path[:-len(_NEW)]
                # The current copy is gone only between a save's two renames, and by then
                # the new copy was complete: finish that save. Anything else is a save
                # that had not reached its first rename: discard it.
                if flashio.size(p) < 0 and self._read(path, False):
                    self.flash.rename(path, p)
                    self.rolled_forward += 1
                else:
                    self.flash.remove(path)
                    self.rolled_back += 1
        self._dirty = False

    # --- internals ------------------------------------------------------------------------

    def _ready(self):
        if self._dirty:
            self.recover()

    def _begin(self):
        self._ready()
        self._dirty = True

    def _check_data(self, name, data):
        if not isinstance(data, (bytes, bytearray)):
            raise TypeError("record %s: payload must be bytes, not %s; use save()/commit() "
                            "for objects" % (name, type(data).__name__))
        if len(data) > self.max_record:
            raise StoreError("record %s: %d bytes exceed the %d-byte limit; store less or "
                             "raise max_record" % (name, len(data), self.max_record))

    def _listdir(self):
        return os.listdir(self.root or ".")

    def _marked_names(self, mark):
        data = self._read(mark, True)
        if not data:
            return None
        try:
            names = bytes(data).decode().split("\n")
            for name in names:
                check_name(name)
        except ValueError:
            return None
        return names

    def _apply(self, names):
        for name in names:
            p = self._pre + name
            if flashio.size(p + _TX) >= 0:
                self._install(p, p + _TX)
        self.flash.remove(self._pre + _MARK)

    def _install(self, p, staged):
        # Keep the current copy as the backup only if it is valid: a corrupt current copy
        # must not push the last good one out.
        if flashio.size(p) >= 0:
            if self._read(p, False):
                self.flash.rename(p, p + _BAK)
            else:
                self.flash.remove(p)
        self.flash.rename(staged, p)

    def _write(self, path, data):
        f = open(path, "wb")
        try:
            self.flash.write(f, pack(data))
        finally:
            f.close()

    def _read(self, path, keep):
        """Payload (keep) or True if `path` holds a valid record; None if not; False if
        the file is missing."""
        try:
            f = open(path, "rb")
        except OSError:
            return False
        try:
            head = f.read(_HDR_LEN)
            if len(head) != _HDR_LEN:
                return None
            magic, length, crc = struct.unpack(_HDR, head)
            if magic != _MAGIC or length > self.max_record:
                return None
            if f.seek(0, 2) != _HDR_LEN + length:
                return None
            f.seek(_HDR_LEN)
            c = binascii.crc32(head[:8])
            if keep:
                data = f.read(length)
                if len(data) != length or binascii.crc32(data, c) != crc:
                    return None
                return data
            mv = _chunk()
            left = length
            while left:
                n = f.readinto(mv[:min(left, _CHUNK)])
                if not n:
                    return None
                c = binascii.crc32(mv[:n], c)
                left -= n
            return True if c == crc else None
        finally:
            f.close()

    def _load(self, name, validate, decode):
        check_name(name)
        self._ready()
        p = self._pre + name
        seen = False
        for path, source in ((p, CURRENT), (p + _BAK, BACKUP)):
            data = self._read(path, True)
            if data is False:
                continue
            seen = True
            if data is None:
                continue
            try:
                obj = decode(data) if decode else data
                if validate is not None and validate(obj) is False:
                    continue
            except (ValueError, TypeError, KeyError, IndexError):
                continue    # undecodable or rejected by the caller: try the next copy
            self.last_source = source
            if source == BACKUP:
                self.fallbacks += 1
            return obj
        self.last_source = None
        if seen:
            raise StoreError("record %s: no valid copy (current and backup fail their "
                             "checks); save it again or delete it" % name)
        return None
