"""Device Ed25519 (firmware/lib/ed25519.py) against the textbook implementation
(bench/textbook_ed25519.py), both inside the real micropython, same process, same inputs.

Prints verify/sign times and their ratio (issue target: device <= 0.4 x textbook), the heap
figures that matter on an ESP32 (free heap one verify/sign needs, bytes allocated per call,
RAM held by the imported modules and the comb table), and an ESP32 time estimate.

ESP32 estimate, method: this script also times a calibration workload, the Gibbons pi spigot
(65 digits, the same big-integer operations as MicroPython's perf_bench bm_pidigits at
N=100 M=100). MicroPython's own published bm_pidigits scores give the board's time for that
workload (score = 65e6 / time in us):
  ESP32   591.97 -> 109.8 ms  (micropython PR #7850, esp32 "perf" build, default clock)
  RP2040  474.88 -> 136.9 ms  (micropython PR #14182, RPI_PICO, 125 MHz)
Board time ~= host time x (board calibration time / host calibration time). The spigot here
allocates fewer tuples than bm_pidigits, so it runs a little faster on the host and the
estimate errs high. On a 31-bit small-int port the 32-bit halves of SHA-512 are bignums too:
the "upper" figure charges SHA-512 at the textbook's all-bignum speed.

Run: .venv/bin/python bench/bench_ed25519.py   (exit 0; figures on stdout)
"""
import json
import sys
from pathlib import Path

from edgekit.testing import mp

HERE = Path(__file__).resolve().parent
BOARDS = {"ESP32": 65e6 / 591.97, "RP2040": 65e6 / 474.88}   # calibration time, us
TARGET = 0.4
ROUNDS = 15

VM_CODE = r"""
import gc, json, time, micropython
gc.collect()
base = gc.mem_alloc()
import ed25519
gc.collect()
resident = gc.mem_alloc() - base
import textbook_ed25519 as tb
from sha512 import sha512 as fast_sha512

seed = bytes(range(7, 39))
msg = bytes(range(100))          # a typical signed CBOR message body
pk = ed25519.public_key(seed)
sig = ed25519.sign(seed, msg)
assert_same = (tb.sign(seed, msg) == sig and tb.secret_to_public(seed) == pk
               and tb.verify(pk, msg, sig) and ed25519.verify(pk, msg, sig))


def us(fn):
    t = time.ticks_us()
    fn()
    return time.ticks_diff(time.ticks_us(), t)


def median(xs):
    xs = sorted(xs)
    return xs[len(xs) // 2]


times = {"verify": [], "tb_verify": [], "sign": [], "tb_sign": [],
         "sha": [], "tb_sha": [], "calib": []}
block = bytes(111)               # one SHA-512 block after padding
for _ in range(%(rounds)d):
    # Interleaved so drift on a busy machine hits both implementations alike.
    times["verify"].append(us(lambda: ed25519.verify(pk, msg, sig)))
    times["tb_verify"].append(us(lambda: tb.verify(pk, msg, sig)))
    times["sign"].append(us(lambda: ed25519.sign(seed, msg)))
    times["tb_sign"].append(us(lambda: tb.sign(seed, msg)))
    times["sha"].append(us(lambda: fast_sha512(block)))
    times["tb_sha"].append(us(lambda: tb.sha512(block)))


def pi_spigot(n):
    # Gibbons' unbounded spigot on linear fractional transforms (q r; s t), written out
    # with the same products as perf_bench bm_pidigits so its published scores apply.
    q, r, s, t = 1, 0, 0, 1
    k = 1
    digits = 0
    for _ in range(n):
        y = (q * 3 + r) // (s * 3 + t)
        while y != (q * 4 + r) // (s * 4 + t):
            q, r, s, t = q * k, q * (4 * k + 2) + r * (2 * k + 1), s * k + t * 0, \
                s * (4 * k + 2) + t * (2 * k + 1)
            k += 1
            y = (q * 3 + r) // (s * 3 + t)
        q, r, s, t = 10 * q + (-10 * y) * s, 10 * r + (-10 * y) * t, 0 * q + 1 * s, \
            0 * r + 1 * t
        digits = digits * 10 + y
    return digits


for _ in range(5):
    times["calib"].append(us(lambda: pi_spigot(65)))
calib_ok = str(pi_spigot(65)).startswith("314159265358979")

slots = [None] * 1024


def with_free(budget, fn):
    gc.collect()
    n = 0
    for size in (8192, 1024, 128, 16):
        while n < len(slots) and gc.mem_free() - size - 64 > budget:
            try:
                slots[n] = bytes(size)
            except MemoryError:
                break
            n += 1
    try:
        return fn() is not None
    except MemoryError:
        return False
    finally:
        for i in range(n):
            slots[i] = None
        gc.collect()


def min_free(fn):
    lo, hi = 0, 48 * 1024
    while hi - lo > 256:
        mid = (lo + hi) // 2
        if with_free(mid, fn):
            hi = mid
        else:
            lo = mid
    return hi


def allocated(fn):
    gc.collect()
    t = micropython.mem_total()
    fn()
    return micropython.mem_total() - t


gc.collect()
b = gc.mem_alloc()
table_copy = tuple(tuple(int.from_bytes(v.to_bytes(32, "little"), "little") for v in e)
                   for e in ed25519._COMB)
gc.collect()
table_ram = gc.mem_alloc() - b
del table_copy

out = {k: median(v) for k, v in times.items()}
out.update({
    "same_output": assert_same, "calib_ok": calib_ok,
    "resident": resident, "table_ram": table_ram,
    "table_bytes": len(ed25519._COMB) * 3 * 32, "table_points": len(ed25519._COMB),
    "verify_min_free": min_free(lambda: ed25519.verify(pk, msg, sig)),
    "sign_min_free": min_free(lambda: ed25519.sign(seed, msg)),
    "tb_verify_min_free": min_free(lambda: tb.verify(pk, msg, sig)),
    "verify_alloc": allocated(lambda: ed25519.verify(pk, msg, sig)),
    "tb_verify_alloc": allocated(lambda: tb.verify(pk, msg, sig)),
    "heap": gc.mem_alloc() + gc.mem_free(),
})
print(json.dumps(out))
"""


def main():
    r = mp.run_json(VM_CODE % {"rounds": ROUNDS}, heap="110K", timeout=600,
                    extra_paths=[HERE])
    if not (r["same_output"] and r["calib_ok"]):
        print("error: implementations disagree or calibration is wrong:", r)
        return 1
    rv = r["verify"] / r["tb_verify"]
    rs = r["sign"] / r["tb_sign"]
    ms = lambda us: us / 1000.0  # noqa: E731
    print("Ed25519 in micropython (unix port, heap %d KB), medians of %d interleaved runs,"
          " 100-byte message" % (r["heap"] // 1024, ROUNDS))
    print("  verify: device %.2f ms, textbook %.2f ms  ratio %.2f (target <= %.1f: %s)"
          % (ms(r["verify"]), ms(r["tb_verify"]), rv, TARGET, "met" if rv <= TARGET else "NOT met"))
    print("  sign:   device %.2f ms, textbook %.2f ms  ratio %.2f (target <= %.1f: %s)"
          % (ms(r["sign"]), ms(r["tb_sign"]), rs, TARGET, "met" if rs <= TARGET else "NOT met"))
    print("  SHA-512 one block: device %.0f us, textbook %.0f us  ratio %.2f"
          % (r["sha"], r["tb_sha"], r["sha"] / r["tb_sha"]))
    print("Memory")
    print("  free heap one call needs: verify %.1f KB, sign %.1f KB (textbook verify %.1f KB)"
          % (r["verify_min_free"] / 1024, r["sign_min_free"] / 1024,
             r["tb_verify_min_free"] / 1024))
    print("  bytes allocated per verify (GC churn): device %.0f KB, textbook %.0f KB"
          % (r["verify_alloc"] / 1024, r["tb_verify_alloc"] / 1024))
    print("  comb table: %d points, %d bytes encoded, %d bytes of heap as ints here"
          % (r["table_points"], r["table_bytes"], r["table_ram"]))
    print("  resident after import (ed25519 + sha512 bytecode and tables): %.1f KB"
          % (r["resident"] / 1024))
    print("Board estimate (calibration: pi spigot, 65 digits, %.1f ms here)"
          % ms(r["calib"]))
    sha_blocks = 2   # verify hashes R || A || 100-byte message: 164 bytes, 2 blocks
    for board, calib_us in BOARDS.items():
        f = calib_us / r["calib"]
        upper = r["verify"] + sha_blocks * (r["tb_sha"] - r["sha"])
        upper_sign = r["sign"] + 3 * sha_blocks * (r["tb_sha"] - r["sha"])
        print("  %-6s x%.0f: verify ~%.0f ms (upper %.0f), sign ~%.0f ms (upper %.0f)"
              % (board, f, ms(r["verify"] * f), ms(upper * f), ms(r["sign"] * f),
                 ms(upper_sign * f)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
