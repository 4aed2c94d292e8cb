"""What the weak-key checks cost the device (firmware/lib/ed25519.py), inside the real
micropython, as ratios against one verify measured in the same process:

- check_public(pub): the full check run when a trust anchor is installed (PROV_COMMIT,
  KEY_EPOCH) and on the device's own new key: one decode (a square root) and three
  doublings;
- the prefilter verify runs on every call (the y of A and R against the 5 small-order y
  values, A's y against p): comparisons only.

Run: .venv/bin/python bench/bench_point_check.py   (exit 0; figures on stdout)
"""
from edgekit.testing import mp

ROUNDS = 31

CODE = r"""
import time
import ed25519
seed = bytes(range(32))
msg = b"x" * 100
pk = ed25519.public_key(seed)
sig = ed25519.sign(seed, msg)
rb = sig[:32]
small = ed25519._SMALL_Y
mask = ed25519._MASK255
p = ed25519._P


def prefilter():
    # the same operations verify_parts adds before decoding A
    ya = int.from_bytes(pk, "little") & mask
    return ya >= p or ya in small or int.from_bytes(rb, "little") & mask in small


def us(fn, n=1):
    t = time.ticks_us()
    for _ in range(n):
        fn()
    return time.ticks_diff(time.ticks_us(), t) / n


v, c, f = [], [], []
for _ in range(%d):
    v.append(us(lambda: ed25519.verify(pk, msg, sig)))
    c.append(us(lambda: ed25519.check_public(pk)))
    f.append(us(prefilter, 100))
for xs in (v, c, f):
    xs.sort()
m = len(v) // 2
print("%%.1f %%.1f %%.2f" %% (v[m], c[m], f[m]))
""" % ROUNDS


def main():
    verify, check, pre = (float(x) for x in mp.run(CODE).split())
    print(f"Weak-key checks in micropython (unix port), {ROUNDS} interleaved rounds, medians")
    print(f"  one verify (reference)         {verify / 1000:6.2f} ms")
    print(f"  check_public, at install time  {check / 1000:6.2f} ms   "
          f"ratio {check / verify:.3f} of a verify")
    print(f"  verify's prefilter, per call   {pre:6.2f} us   "
          f"ratio {pre / verify:.4f} of a verify")


if __name__ == "__main__":
    main()
