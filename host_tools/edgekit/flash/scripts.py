"""The code `edgekit flash` runs on the device, in its raw REPL (sent by raw-paste).

Device code: it follows the firmware rules (MicroPython on ESP32/RP2040/unix, bounded
buffers, no recursion, no assert). `render(SCRIPT, NAME=value...)` prepends the arguments
as Python literals; every script prints its answers on stdout and is tested in the real
`micropython` (tests/host/test_flash_scripts.py).

The transfer (RECEIVE) is raw binary on the REPL's stdin, not text: each frame is one
length byte (1..FRAME) and that many bytes of one file; the device answers every frame it
has consumed with ACK, and the host keeps at most WINDOW frames unanswered, so the device's
stdin buffer (260 bytes on an ESP32 UART, the smallest of our boards) never overruns. A
length byte of 0 aborts the transfer: a host that lost the link mid-frame sends FRAME + 1
zero bytes before anything else, which completes any frame the device waits for and then
stops it (PRELUDE). Ctrl-C is off meanwhile (0x03 is data).
"""
FRAME = 128
WINDOW = 2
ACK = 0x06
PRELUDE = b"\x00" * (FRAME + 1)

PROBE = """
import sys, os, gc, json
def _probe():
    i = sys.implementation
    r = {"platform": sys.platform, "version": list(i.version[:3]),
         "machine": getattr(i, "_machine", ""), "mpy": getattr(i, "_mpy", 0),
         "maxsize": sys.maxsize, "deflate": False, "sha256": False}
    emu = sys.modules.get("hal_emu")
    r["emulated"] = getattr(emu, "NAME", None) if emu else None
    try:
        import deflate
        r["deflate"] = hasattr(deflate, "DeflateIO")
    except ImportError:
        pass
    try:
        import hashlib
        r["sha256"] = hasattr(hashlib, "sha256")
    except ImportError:
        pass
    try:
        f = open("/board.json")
        r["board_json"] = json.load(f).get("name")
        f.close()
    except (OSError, ValueError):
        r["board_json"] = None
    def there(p):
        try:
            os.stat(p)
            return True
        except OSError:
            return False
    # firmware/storage/store.py: a record is its file or its backup, or a committed .tx
    r["provisioned"] = there("/ek/identity") or there("/ek/identity.bak") or (
        there("/ek/_commit") and there("/ek/identity.tx"))
    # The firmware frozen into the board's image (edgekit build-image), seen by the import
    # system only (".frozen"; os.stat cannot see frozen modules).
    r["frozen"] = None
    saved = sys.path[:]
    sys.path[:] = [".frozen"]
    try:
        import frozen_fw
        r["frozen"] = {"board": frozen_fw.BOARD, "version": frozen_fw.VERSION,
                       "kinds": frozen_fw.KINDS, "hal": frozen_fw.HAL,
                       "modules": frozen_fw.MODULES}
    except ImportError:
        pass
    finally:
        sys.path[:] = saved
        sys.modules.pop("frozen_fw", None)
    st = os.statvfs("/")
    r["fs_block"] = st[0]
    r["fs_size"] = st[0] * st[2]
    r["fs_free"] = st[0] * st[3]
    gc.collect()
    r["heap_free"] = gc.mem_free()
    r["heap_total"] = gc.mem_free() + gc.mem_alloc()
    print(json.dumps(r))
_probe()
del _probe
"""

# (size, SHA-256 hex) of a file on the device, through a caller's buffer: shared by the
# scripts that hash (their text is sent to the raw REPL, so they share it as text).
_HASH = """
def _hash(p, buf, mv):
    h = hashlib.sha256()
    n = 0
    f = open(p, "rb")
    while True:
        k = f.readinto(buf)
        if not k:
            break
        h.update(mv[:k])
        n += k
    f.close()
    return n, binascii.hexlify(h.digest()).decode()
"""

# Lists every file and directory ("F path size digest" / "D path"), hashing the files WANT
# names when their size matches. The emulator's read-only ROM mount is not the flash.
SURVEY = """
import os, hashlib, binascii
""" + _HASH + """
def _survey(want):
    buf = bytearray(512)
    mv = memoryview(buf)
    stack = ["/"]
    while stack:
        d = stack.pop()
        for e in os.ilistdir(d):
            p = d + e[0]
            if p == "/.frozen":
                continue
            if e[1] & 0x4000:
                print("D\\t" + p)
                stack.append(p + "/")
                continue
            size = os.stat(p)[6]
            dig = _hash(p, buf, mv)[1] if want.get(p) == size else ""
            print("F\\t%s\\t%d\\t%s" % (p, size, dig))
_survey(WANT)
del _survey, _hash
"""

REMOVE = """
import os
def _remove(files, dirs):
    n = 0
    for p in files:
        try:
            os.remove(p)
            n += 1
        except OSError:
            pass
    for p in dirs:
        try:
            os.rmdir(p)
            n += 1
        except OSError:
            pass
    print(n)
_remove(FILES, DIRS)
del _remove
"""

# FILES: [(path, wire size, deflated, size, sha256 hex)]. A file arrives into "~name"
# (deflated) or "+name", is inflated into "+name", read back and hashed, and only then
# renamed over "name": a power cut leaves either the old file or the new one under the
# real name, never a torn one (the temporary names are removed by the next run).
RECEIVE = """
import sys, os, select, hashlib, binascii, micropython
""" + _HASH + """def _inflate(src, dst, buf, mv):
    import deflate
    fin = open(src, "rb")
    fout = open(dst, "wb")
    try:
        z = deflate.DeflateIO(fin, deflate.ZLIB)
        while True:
            k = z.readinto(buf)
            if not k:
                break
            fout.write(mv[:k])
    finally:
        fout.close()
        fin.close()
def _rx(files, frame, timeout):
    inp = sys.stdin.buffer
    out = sys.stdout.buffer
    poll = select.poll()
    poll.register(inp, select.POLLIN)
    buf = bytearray(512 if frame < 512 else frame)
    mv = memoryview(buf)
    hb = bytearray(1)
    ack = bytes([ACK])
    for path, xsize, packed, size, digest in files:
        cut = path.rfind("/")
        d, base = path[:cut], path[cut + 1:]
        if d:
            try:
                os.mkdir(d)
            except OSError:
                pass
        part = d + "/+" + base
        dst = d + "/~" + base if packed else part
        f = open(dst, "wb")
        n = 0
        try:
            while n < xsize:
                if not poll.poll(timeout):
                    print("abort link silent for %d ms" % timeout)
                    return
                k = hb[0] if inp.readinto(hb) == 1 else 0
                if k == 0 or k > frame or n + k > xsize or inp.readinto(mv[:k]) != k:
                    print("abort at %s" % path)
                    return
                f.write(mv[:k])
                n += k
                out.write(ack)
        finally:
            f.close()
        why = None
        if packed:
            try:
                _inflate(dst, part, buf, mv)
            except (OSError, ValueError):
                why = "damaged deflate stream"
            os.remove(dst)
        if why is None:
            got = _hash(part, buf, mv)
            if got[0] != size or got[1] != digest:
                why = "SHA-256 mismatch after writing"
        if why is None:
            os.rename(part, path)
            print("ok\\t" + path)
        else:
            try:
                os.remove(part)
            except OSError:
                pass
            print("bad\\t%s\\t%s" % (path, why))
    print("done")
micropython.kbd_intr(-1)
try:
    _rx(FILES, FRAME, TIMEOUT_MS)
finally:
    micropython.kbd_intr(3)
del _rx, _hash, _inflate
"""

# Imports what the firmware imports to start and reports what that costs and leaves.
# REACH: the bytes the firmware must have to work in. Asked for once before the count: a
# port whose heap grows on demand (esp32 SPIRAM builds: MICROPY_GC_SPLIT_HEAP_AUTO, py/gc.c
# gc_try_add_heap) adds the PSRAM area then, which gc.mem_free() counts only once it is
# added; on a fixed heap the request fits or fails and changes nothing.
LOAD_CHECK = """
import gc, json, sys
def _reach(n):
    try:
        b = bytearray(n)
    except MemoryError:
        pass
    b = None
def _load(mods):
    gc.collect()
    before = gc.mem_alloc()
    err = None
    for m in mods:
        try:
            __import__(m)
        except MemoryError:
            err = "MemoryError importing " + m
            break
        except Exception as e:
            err = "%s importing %s: %s" % (type(e).__name__, m, e)
            break
    gc.collect()
    if err is None:
        _reach(REACH)
        gc.collect()
    print(json.dumps({"resident": gc.mem_alloc() - before, "free": gc.mem_free(),
                      "total": gc.mem_alloc() + gc.mem_free(), "error": err}))
_load(MODULES)
"""


def render(script: str, **args) -> str:
    """`script` with NAME = repr(value) lines in front (values: str, int, bool, None,
    lists/tuples/dicts of those: their repr is valid MicroPython)."""
    head = "".join(f"{name} = {value!r}\n" for name, value in sorted(args.items()))
    return head + script.lstrip("\n")
