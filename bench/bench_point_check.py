"""What the weak-key checks cost the device (firmware/crypto/trust.py, ed25519.py), inside the real
micropython, as ratios against one verify measured in the same process:

- trust.check_public(pub): the full check run when a trust anchor is installed (PROV_COMMIT,
  KEY_EPOCH) and on the device's own new key: one decode (a square root) and three
  doublings;
- the prefilter verify runs on every call (the low byte of A and R screened, then their y
  against the 5 small-order y values; A's y against p): comparisons only.

Run: .venv/bin/python bench/bench_point_check.py   (exit 0; figures on stdout)
"""
from edgekit.testing import mp

ROUNDS = 31

CODE = r"""
import time
import ed25519
import trust
seed = bytes(range(32))
msg = b"x" * 100
pk = ed25519.public_key(seed)
sig = ed25519.sign(seed, msg)
rb = sig[:32]
mask = ed25519._MASK255
p = ed25519._P


def prefilter():
    # the same operations verify_parts adds before decoding A
    for b in (pk, rb):
        if b[0] in b"\x01\xec\x00\x26\xc7":
            y = int.from_bytes(b, "little") & mask
            y8 = 0x05FC536D880238B13933C6D305ACDFD5F098EFF289F4C345B027B2C28F95E826
            if y in (0, 1, p - 1, y8, p - y8):
                return True
    return pk[31] & 0x7F == 0x7F and int.from_bytes(pk, "little") & mask >= p


def us(fn, n=1):
    t = time.ticks_us()
    for _ in range(n):
        fn()
    return time.ticks_diff(time.ticks_us(), t) / n


v, c, f = [], [], []
for _ in range(%d):
    v.append(us(lambda: ed25519.verify(pk, msg, sig)))
    c.append(us(lambda: trust.check_public(pk)))
    f.append(us(prefilter, 100))
for xs in (v, c, f):
    xs.sort()
m = len(v) // 2
print("%%.1f %%.1f %%.2f" %% (v[m], c[m], f[m]))
""" % ROUNDS


def main():
    # trust imports the protocol agent, which reserves its frame buffers: a PSRAM-size heap
    verify, check, pre = (float(x) for x in mp.run(CODE, heap="256K").split())
    print(f"Weak-key checks in micropython (unix port), {ROUNDS} interleaved rounds, medians")
    print(f"  one verify (reference)         {verify / 1000:6.2f} ms")
    print(f"  check_public, at install time  {check / 1000:6.2f} ms   "
          f"ratio {check / verify:.3f} of a verify")
    print(f"  verify's prefilter, per call   {pre:6.2f} us   "
          f"ratio {pre / verify:.4f} of a verify")


if __name__ == "__main__":
    main()
