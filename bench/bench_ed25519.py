"""Device Ed25519 (firmware/crypto/ed25519.py) against the textbook implementation
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
allocates fewer tuples than bm_pidigits (0.75 ms against 1.00 ms for bm_pidigits' own code,
measured once on this machine), so the estimates err high by about a quarter. On a 31-bit
small-int port the 32-bit halves of SHA-512 are bignums too: the "upper" figure charges
SHA-512 at the textbook's all-bignum speed.

Run: .venv/bin/python bench/bench_ed25519.py   (exit 0; figures on stdout)
"""
import sys
from pathlib import Path

from edgekit.testing import mp

HERE = Path(__file__).resolve().parent
BOARDS = {"ESP32": 65e6 / 591.97, "RP2040": 65e6 / 474.88}   # calibration time, us
TARGET = 0.4
ROUNDS = 15
MSG_BYTES = 100                  # a typical signed CBOR message body


def blocks(n):
    """SHA-512 compression calls for an n-byte input (padding adds at least 17 bytes)."""
    return (n + 16) // 128 + 1


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
msg = bytes(range(%(msg_bytes)d))
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


for _ in range(%(rounds)d):
    # Interleaved so drift on a busy machine hits every measurement alike; ratios and
    # board estimates are taken per round, then the median.
    times["verify"].append(us(lambda: ed25519.verify(pk, msg, sig)))
    times["tb_verify"].append(us(lambda: tb.verify(pk, msg, sig)))
    times["sign"].append(us(lambda: ed25519.sign(seed, msg)))
    times["tb_sign"].append(us(lambda: tb.sign(seed, msg)))
    times["sha"].append(us(lambda: fast_sha512(block)))
    times["tb_sha"].append(us(lambda: tb.sha512(block)))
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

gc.collect()
b = gc.mem_alloc()
point = ed25519._decode(pk)
a_table = ed25519._odd_multiples(point[0], point[1])
gc.collect()
a_table_ram = gc.mem_alloc() - b
del a_table

out = {k: median(v) for k, v in times.items()}
out["rounds"] = times
out.update({
    "a_table_ram": a_table_ram,
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
    r = mp.run_json(VM_CODE % {"rounds": ROUNDS, "msg_bytes": MSG_BYTES}, heap="110K", timeout=600,
                    extra_paths=[HERE])
    if not (r["same_output"] and r["calib_ok"]):
        print("error: implementations disagree or calibration is wrong:", r)
        return 1
    rounds = r["rounds"]

    def per_round(f):
        xs = sorted(f(i) for i in range(len(rounds["verify"])))
        return xs[len(xs) // 2]

    rv = per_round(lambda i: rounds["verify"][i] / rounds["tb_verify"][i])
    rs = per_round(lambda i: rounds["sign"][i] / rounds["tb_sign"][i])
    rsha = per_round(lambda i: rounds["sha"][i] / rounds["tb_sha"][i])
    ms = lambda us: us / 1000.0  # noqa: E731
    print("Ed25519 in micropython (unix port, heap %d KB), %d interleaved rounds, medians,"
          " %d-byte message" % (r["heap"] // 1024, ROUNDS, MSG_BYTES))
    for name, ratio in (("verify", rv), ("sign", rs)):
        print("  %-7s device %5.2f ms, textbook %5.2f ms   ratio %.2f (target <= %.1f: %s)"
              % (name + ":", ms(r[name]), ms(r["tb_" + name]), ratio, TARGET,
                 "met" if ratio <= TARGET else "NOT met"))
    print("  SHA-512 one block: device %.0f us, textbook %.0f us   ratio %.2f"
          % (r["sha"], r["tb_sha"], rsha))
    print("Memory (this port: 64-bit, so ints and pointers are larger than on a board)")
    print("  free heap one call needs: verify %.1f KB, sign %.1f KB (textbook verify %.1f KB)"
          % (r["verify_min_free"] / 1024, r["sign_min_free"] / 1024,
             r["tb_verify_min_free"] / 1024))
    print("  bytes allocated per verify (GC churn): device %.0f KB, textbook %.0f KB"
          % (r["verify_alloc"] / 1024, r["tb_verify_alloc"] / 1024))
    print("  comb table (resident): %d points, %d bytes encoded, %d bytes of heap as ints"
          % (r["table_points"], r["table_bytes"], r["table_ram"]))
    print("  odd-multiples table of A (per verify, transient): %d bytes of heap"
          % r["a_table_ram"])
    print("  resident after import (ed25519 + sha512 bytecode and tables): %.1f KB"
          % (r["resident"] / 1024))
    print("Board estimate: time here x (board / here) for the pi-spigot calibration"
          " (%.2f ms here)" % ms(r["calib"]))
    sha_extra_verify = blocks(64 + MSG_BYTES)
    sha_extra_sign = blocks(32) + blocks(32 + MSG_BYTES) + blocks(64 + MSG_BYTES)
    for board, calib_us in BOARDS.items():
        def est(name, sha_blocks, upper):
            def one(i):
                t = rounds[name][i]
                if upper:
                    t += sha_blocks * (rounds["tb_sha"][i] - rounds["sha"][i])
                return t * calib_us / rounds["calib"][i]
            return ms(per_round(one))
        print("  %-6s x%3.0f: verify ~%.0f ms (upper %.0f), sign ~%.0f ms (upper %.0f)"
              % (board, calib_us / r["calib"], est("verify", sha_extra_verify, False),
                 est("verify", sha_extra_verify, True), est("sign", sha_extra_sign, False),
                 est("sign", sha_extra_sign, True)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
