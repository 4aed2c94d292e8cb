"""Storage figures: flash operations per append / save / commit / ack (through the flash
seam), block erases per operation on littlefs (MicroPython's own VfsLfs2 on a counting RAM
block device shaped like the ESP32 `vfs` partition), append rate and 64 KB recovery time as
ratios against plain file I/O in the same VM run, and the smallest heap the recovery fits.

    python bench/bench_storage.py [--long]   (prints the figures docs/flash-wear.md uses)
"""
import json
import sys
import tempfile
from pathlib import Path

from edgekit.testing.mpycache import compile_modules
from edgekit.testing import mp

PRELUDE = r'''
import sys
sys.path.insert(0, %(lib)r)
import gc, json, os, time, flashio, store, journal
ROOT = %(root)r
'''

# --- 1. flash operations through the seam -----------------------------------------------
SEAM = PRELUDE + r'''
fl = flashio.PlainFlash()
out = {}
j = journal.Journal(ROOT, "seam", 65536, 4096, fl)
for i in range(10):
    j.append(b"w" * 48)
w, b = fl.writes, fl.bytes
N = 5000
for i in range(N):
    j.append(b"x" * 48)
    if i %% 100 == 99:
        j.ack(j.last_seq - 50)
out["append"] = [(fl.writes - w) / N, (fl.bytes - b) / N]
s = store.Store(ROOT + "/st", fl)
s.save("cfg", {"v": 0, "pad": "p" * 150})
w, b = fl.writes, fl.bytes
for i in range(100):
    s.save("cfg", {"v": i, "pad": "p" * 150})
out["save"] = [(fl.writes - w) / 100, (fl.bytes - b) / 100, len(s.load_bytes("cfg"))]
w, b = fl.writes, fl.bytes
for i in range(20):
    s.commit({"id": {"i": i}, "cert": "c" * 300, "anch": "a" * 200, "conf": {"v": i}})
out["commit4"] = [(fl.writes - w) / 20, (fl.bytes - b) / 20]
w, b = fl.writes, fl.bytes
for i in range(50):
    j.append(b"y")
    j.ack(j.last_seq)
out["ack"] = [(fl.writes - w) / 50 - 1, (fl.bytes - b) / 50 - 13]
print(json.dumps(out))
'''

# --- 2. speed ratios in the unix VM ---------------------------------------------------------
SPEED = PRELUDE + r'''
N = 3000
rec = b"\xecJ0\x00" + b"s" * 56         # same size as a journal record of 48 bytes
f = open(ROOT + "/raw.bin", "ab")
t = time.ticks_us()
for i in range(N):
    f.write(rec)
    f.flush()
raw = time.ticks_diff(time.ticks_us(), t)
f.close()
j = journal.Journal(ROOT, "speed", 10 ** 7, 4096, flashio.PlainFlash())
t = time.ticks_us()
for i in range(N):
    j.append(b"x" * 48)
app = time.ticks_diff(time.ticks_us(), t)
j.close()
# A 64 KB journal: recovery (open) against reading its segment files raw.
j = journal.Journal(ROOT, "rec", 65536, 4096, flashio.PlainFlash())
for i in range(1200):
    j.append(b"%%d:" %% i + b"r" * 44)
j.close()
names = [j.dir + "/" + n for n in os.listdir(j.dir) if n.endswith(".log")]
buf = bytearray(256)
rounds = 40
t = time.ticks_us()
for r in range(rounds):
    total = 0
    for n in names:
        f = open(n, "rb")
        while True:
            k = f.readinto(buf)
            if not k:
                break
            total += k
        f.close()
rawread = time.ticks_diff(time.ticks_us(), t)
t = time.ticks_us()
for r in range(rounds):
    k = journal.Journal(ROOT, "rec", 65536, 4096, flashio.PlainFlash())
    k.close()
recover = time.ticks_diff(time.ticks_us(), t)
print(json.dumps({"append_us": app / N, "raw_us": raw / N, "bytes": total,
                  "recover_us": recover / rounds, "rawread_us": rawread / rounds,
                  "records": k.stats()["pending"]}))
'''

# --- 3. littlefs erases (MicroPython's VfsLfs2, 4096-byte blocks) ---------------------------
LFS = PRELUDE + r'''
import vfs


class CountingBlockDev:
    """RAM block device with littlefs's extended interface; counts erases per block."""

    def __init__(self, block_size, blocks):
        self.bs = block_size
        self.n = blocks
        self.data = bytearray(block_size * blocks)
        self.mv = memoryview(self.data)
        self.erased = [0] * blocks
        self.prog = 0

    def readblocks(self, b, buf, off=0):
        a = b * self.bs + off
        buf[:] = self.mv[a:a + len(buf)]

    def writeblocks(self, b, buf, off=0):
        a = b * self.bs + off
        self.mv[a:a + len(buf)] = buf
        self.prog += len(buf)

    def ioctl(self, op, arg):
        if op == 4:
            return self.n
        if op == 5:
            return self.bs
        if op == 6:
            self.erased[arg] += 1
            return 0

    def erases(self):
        return sum(self.erased)


dev = CountingBlockDev(4096, %(blocks)d)
vfs.VfsLfs2.mkfs(dev, **%(lfs_args)s)
vfs.mount(vfs.VfsLfs2(dev, **%(lfs_args)s), "/flash")
fl = flashio.PlainFlash()
out = {}


def measure(name, n, fn):
    e, p = dev.erases(), dev.prog
    for i in range(n):
        fn(i)
    out[name] = [(dev.erases() - e) / n, (dev.prog - p) / n]


for size in (16, 48, 256, 1024):
    j = journal.Journal("/flash", "j%%d" %% size, 65536, 4096, fl)
    measure("append_%%d" %% size, 400, lambda i: j.append(b"x" * size))
    j.close()
for seg in (128, 512):
    j = journal.Journal("/flash", "s%%d" %% seg, 16 * seg, seg, fl)
    measure("append_48_seg%%d" %% seg, 400, lambda i: j.append(b"x" * 48))
    j.close()
s = store.Store("/flash/st", fl)
for size in (116, 117, 500, 501, 2048):
    s.save_bytes("c%%d" %% size, b"p" * size)
    measure("save_%%d" %% size, 100, lambda i: s.save_bytes("c%%d" %% size, b"q" * size))
measure("commit4", 40, lambda i: s.commit({"id": {"i": i}, "cert": "c" * 300,
                                            "anch": "a" * 200, "conf": {"v": i}}))
j = journal.Journal("/flash", "acks", 65536, 4096, fl)
for i in range(200):
    j.append(b"k" * 16)
measure("ack", 100, lambda i: j.ack(i + 1))
# Wear spread after a long mixed run: how evenly littlefs spread the erases.
j = journal.Journal("/flash", "long", 65536, 4096, fl)
for i in range(%(long)d):
    j.append(b"l" * 48)
    if i %% 4 == 0:
        s.save("tot", {"m3": i, "pad": "x" * 150})
    if i %% 50 == 0:
        j.ack(j.last_seq)
used = [e for e in dev.erased if e]
st = os.statvfs("/flash")
out["spread"] = {"max": max(dev.erased), "mean": sum(dev.erased) / len(dev.erased),
                 "blocks_touched": len(used), "blocks": dev.n,
                 "free_blocks": st[3]}
print(json.dumps(out))
'''

# --- 3c. (--long) does littlefs's wear levelling even out over a device's life? ----------
LONG = LFS[:LFS.index("dev = CountingBlockDev")] + r'''
dev = CountingBlockDev(4096, 128)
vfs.VfsLfs2.mkfs(dev)
vfs.mount(vfs.VfsLfs2(dev), "/flash")
fl = flashio.PlainFlash()
s = store.Store("/flash/st", fl)
j = journal.Journal("/flash", "long", 65536, 4096, fl)
for i in range(1, 120001):
    j.append(b"l" * 48)
    if i %% 4 == 0:
        s.save("tot", {"m3": i, "pad": "x" * 150})
    if i %% 50 == 0:
        j.ack(j.last_seq)
    if i %% 30000 == 0:
        print(json.dumps([i, max(dev.erased), sum(dev.erased) / len(dev.erased)]))
'''

# --- 4. smallest heap for recovering a 64 KB journal ----------------------------------------
BUILD64 = PRELUDE + r'''
j = journal.Journal(ROOT, "big", 65536, 4096, flashio.PlainFlash())
for i in range(3000):
    j.append(b"%%d:" %% i + b"m" * 30)
j.close()
print(j.stats()["bytes"])
'''

RECOVER64 = PRELUDE + r'''
gc.collect()
base = gc.mem_alloc()
j = journal.Journal(ROOT, "big", 65536, 4096, flashio.PlainFlash())
gc.collect()
held = gc.mem_alloc() - base
n = 0
frm = j.first_seq
while True:
    recs = j.read(frm, 16, 1024)
    if not recs:
        break
    n += len(recs)
    frm = recs[-1][0] + 1
print(json.dumps({"held": held, "n": n}))
'''


# How MicroPython formats the filesystem: ESP32 inisetup.py uses VfsLfs2 defaults on the
# 2 MiB `vfs` partition; rp2 _boot.py passes progsize=256 on the Pico's 1408 KiB.
BOARDS = (("ESP32 (4 MiB, 2 MiB vfs)", 512, "{}"),
          ("RP2040 Pico (1408 KiB fs)", 352, "{'progsize': 256}"))


def build_lib(dest: Path) -> str:
    return compile_modules(("flashio", "store", "journal"), dest)


def smallest_heap(lib, root):
    for kb in (12, 14, 16, 18, 20, 24, 28, 32, 40, 48, 64, 110):
        try:
            res = mp.run_json(RECOVER64 % {"lib": lib, "root": root}, heap=f"{kb}K")
            return kb, res
        except mp.MicroPythonError:
            continue
    return None, None


def main(argv=None):
    long_run = "--long" in (sys.argv[1:] if argv is None else argv)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        lib = build_lib(tmp)
        for sub in ("seam", "speed", "big"):
            (tmp / sub).mkdir()
        seam = mp.run_json(SEAM % {"lib": lib, "root": str(tmp / "seam")})
        speed = mp.run_json(SPEED % {"lib": lib, "root": str(tmp / "speed")})
        lfs = {}
        for board, blocks, args in BOARDS:
            lfs[board] = mp.run_json(LFS % {"lib": lib, "root": "", "blocks": blocks,
                                            "lfs_args": args, "long": 6000},
                                     heap="8M", timeout=600)
        size = int(mp.run(BUILD64 % {"lib": lib, "root": str(tmp / "big")}).split()[-1])
        heap_kb, rec = smallest_heap(lib, str(tmp / "big"))
        spread = []
        if long_run:
            out = mp.run(LONG % {"lib": lib, "root": ""}, heap="4M", timeout=900)
            spread = [json.loads(ln) for ln in out.splitlines() if ln.startswith("[")]

    print("edgekit storage figures (python bench/bench_storage.py)")
    print("\n1. Flash-seam operations (write / rename / remove each count 1), 48-byte "
          "journal payloads, 160-byte JSON config")
    print(f"   append        {seam['append'][0]:.3f} ops  {seam['append'][1]:.1f} bytes "
          f"(amortised over 5000 appends, ack every 100, eviction on)")
    print(f"   config save   {seam['save'][0]:.1f} ops  {seam['save'][1]:.0f} bytes "
          f"(record {seam['save'][2]} B + 12 B header)")
    print(f"   commit of 4   {seam['commit4'][0]:.1f} ops  {seam['commit4'][1]:.0f} bytes")
    print(f"   ack           {seam['ack'][0]:.1f} ops  {seam['ack'][1]:.0f} bytes")
    print("\n2. Speed in the unix VM (ratios against plain file I/O in the same run)")
    print(f"   append: {speed['append_us'] / speed['raw_us']:.1f}x the time of "
          f"f.write()+f.flush() of the same bytes "
          f"({1e6 / speed['append_us']:.0f} appends/s here)")
    print(f"   recovery of a {speed['bytes'] // 1024} KB journal "
          f"({speed['records']} records): "
          f"{speed['recover_us'] / speed['rawread_us']:.1f}x the time of reading its "
          f"files raw ({speed['recover_us'] / 1000:.1f} ms here)")
    for n, (board, blocks, args) in enumerate(BOARDS):
        res = lfs[board]
        print(f"\n3{'ab'[n]}. littlefs as MicroPython mounts it on {board} (VfsLfs2{args}, "
              f"{blocks} blocks of 4096 B): block erases and bytes programmed per operation")
        for key, label in (("append_16", "append 16 B"), ("append_48", "append 48 B"),
                           ("append_256", "append 256 B"), ("append_1024", "append 1024 B"),
                           ("append_48_seg128", "append 48 B, 128 B segments"),
                           ("append_48_seg512", "append 48 B, 512 B segments"),
                           ("save_116", "save 116 B"), ("save_117", "save 117 B"),
                           ("save_500", "save 500 B"), ("save_501", "save 501 B"),
                           ("save_2048", "save 2048 B"), ("commit4", "commit of 4"),
                           ("ack", "ack")):
            e, p = res[key]
            print(f"   {label:28s} {e:5.2f} erases  {p:7.0f} bytes programmed")
        sp = res["spread"]
        print(f"   wear spread after 6000 appends + 1500 saves: busiest block {sp['max']} "
              f"erases, mean {sp['mean']:.1f} ({sp['blocks_touched']} of {sp['blocks']} "
              f"blocks touched, {sp['free_blocks']} free); busiest/mean = "
              f"{sp['max'] / max(sp['mean'], 1e-9):.1f}")
    if spread:
        print("\n3c. wear spread over a long run (ESP32 settings, 128 blocks, 48 B appends, "
              "a 170 B save every 4th, ack every 50th)")
        for n, top, mean in spread:
            print(f"   after {n:6d} appends: busiest block {top} erases, mean {mean:.0f}, "
                  f"busiest/mean = {top / mean:.2f}")
    else:
        print("\n   (add --long for the wear-spread convergence run, about 30 s)")
    print("\n4. RAM")
    if heap_kb:
        print(f"   recovery + full read of a {size // 1024} KB journal ({rec['n']} records) "
              f"runs in a {heap_kb} KB heap (modules as .mpy); the open journal holds "
              f"{rec['held']} bytes")
    else:
        print("   recovery did not fit any heap tried (up to 110 KB): investigate")
    return 0


if __name__ == "__main__":
    sys.exit(main())
