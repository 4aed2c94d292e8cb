"""Figures for edgekit keys/registry, as ratios against a reference in the same process."""
import os, subprocess, sys, tempfile, time
from pathlib import Path
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from edgekit.keys.store import KeyStore
from edgekit.registry.db import Registry

def per_call(fn, n):
    t = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t) / n

tmp = Path(tempfile.mkdtemp())
ks = KeyStore(tmp / "keys"); ks.init("benchmark-passphrase")
raw = Ed25519PrivateKey.generate()
signer = ks.signer("operator", "benchmark-passphrase")
t_raw = per_call(lambda: raw.sign(b"x" * 200), 2000)
t_signer = per_call(lambda: signer.sign(b"x" * 200), 2000)
t_load = per_call(lambda: ks.signer("operator", "benchmark-passphrase"), 5)
print(f"sign 200 B: Ed25519Signer {t_signer*1e6:.1f} us vs raw cryptography {t_raw*1e6:.1f} us (x{t_signer/t_raw:.2f})")
print(f"load+decrypt one key: {t_load*1e3:.1f} ms (x{t_load/t_raw:.0f} a signature)")

ref = tmp / "ref"
def fsync_write():
    fd = os.open(ref, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600); os.write(fd, b"1\n"); os.fsync(fd); os.close(fd)
t_fsync = per_call(fsync_write, 200)
t_seq = per_call(lambda: ks.next_seq("operator"), 200)
print(f"next_seq: {t_seq*1e3:.3f} ms vs one write+fsync {t_fsync*1e3:.3f} ms (x{t_seq/t_fsync:.2f})")
t_rot = per_call(lambda: (ks.rotate("operator", "benchmark-passphrase"), ks.revoke(ks.find_kid(ks.export_public()["anchors"]["operator"][1]["kid"])["kid"], "benchmark-passphrase")), 3) / 2
print(f"rotate or revoke (incl. key decrypt, KEY_EPOCH sign, fsyncs): {t_rot*1e3:.1f} ms; "
      f"KEY_EPOCH sizes: {ks.epoch_path(1).stat().st_size} B (1 key/role), {ks.epoch_path(2).stat().st_size} B (2 operator keys)")

reg = Registry(tmp / "r.sqlite")
for i in range(200):
    reg.upsert_device(f"d{i}", kind="smart_bin")
seq = iter(range(1, 10**9))
t_touch = per_call(lambda: reg.touch("d1", next(seq)), 500)
t_upsert = per_call(lambda: reg.upsert_device("d2", site="x"), 500)
t_event = per_call(lambda: reg.record_event("d3", "hit", {"n": 1}), 500)
print(f"registry, 1 writer: touch {t_touch*1e3:.3f} ms, upsert {t_upsert*1e3:.3f} ms, event {t_event*1e3:.3f} ms "
      f"(touch = x{t_touch/t_fsync:.2f} a write+fsync)")
reg.close()
worker = ("import sys,time\nfrom edgekit.registry.db import Registry\n"
          "r=Registry(sys.argv[1]); me=sys.argv[2]\n"
          "[r.upsert_device(f'p{me}-{i}', kind='smart_bin') for i in range(2)]\n"
          "t=time.perf_counter()\n"
          "for i in range(300): r.touch(f'p{me}-0', i+1)\n"
          "print(time.perf_counter()-t)")
for procs in (1, 8):
    ps = [subprocess.Popen([sys.executable, "-c", worker, str(tmp / f"c{procs}.sqlite"), str(w)], stdout=subprocess.PIPE, text=True) for w in range(procs)]
    t = time.perf_counter(); outs = [float(p.communicate()[0]) for p in ps]
    total = procs * 300 / max(outs)
    print(f"registry, {procs} process(es): {total:.0f} touches/s in total")
