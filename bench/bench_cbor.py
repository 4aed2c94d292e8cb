"""Device CBOR codec and framing speed, inside the real micropython, as ratios against
references measured in the same process.

- Codec (issue target: encode+decode of a 20-record SenML telemetry payload <= 3 x the time of
  MicroPython's built-in C json.dumps+json.loads of the same records). JSON turns the integer
  SenML labels into strings; that is the JSON form of the same data.
- Heap each encode/decode leaves for the collector, and RAM held by the imported modules
  (what an ESP32 without PSRAM pays).
- Device frame decoder throughput against the 115200-baud byte rate (11 520 B/s) it must keep
  up with, fed whole and in 64-byte UART-sized reads; frame encoder throughput.
- Host: edgekit.protocol.cbor (strict, RFC 8949 key order) against bare cbor2 on the same
  payload, and host framing throughput.

Run: .venv/bin/python bench/bench_cbor.py   (exit 0; figures on stdout)
"""
import json
import statistics
import time

import cbor2

from edgekit import catalog
from edgekit.protocol import cbor as host_cbor
from edgekit.protocol import framing as host_framing
from edgekit.testing import mp

ROUNDS = 15
TARGET = 3.0
BAUD_BPS = 115200 / 10      # 8N1


def records():
    names = [("flow", "m3/h"), ("volume", "m3"), ("pressure", "Pa"), ("temp", "Cel")]
    return [{catalog.SENML_BN: "urn:dev:mac:0024befffe804ff1:", catalog.SENML_N: names[i % 4][0],
             catalog.SENML_U: names[i % 4][1], catalog.SENML_V: 12.345 + i * 0.25,
             catalog.SENML_T: -3600 + i * 180} for i in range(20)]


VM_CODE = r"""
import gc, json, time
import catalog   # shared by every firmware module: not charged to the codec
gc.collect()
base = gc.mem_alloc()
import cbor
gc.collect()
cbor_ram = gc.mem_alloc() - base
base = gc.mem_alloc()
import framing
gc.collect()
framing_ram = gc.mem_alloc() - base
from catalog import SENML_BN, SENML_N, SENML_U, SENML_V, SENML_T

NAMES = [("flow", "m3/h"), ("volume", "m3"), ("pressure", "Pa"), ("temp", "Cel")]
recs = [{SENML_BN: "urn:dev:mac:0024befffe804ff1:", SENML_N: NAMES[i %% 4][0],
         SENML_U: NAMES[i %% 4][1], SENML_V: 12.345 + i * 0.25, SENML_T: -3600 + i * 180}
        for i in range(20)]
enc = cbor.dumps(recs)
txt = json.dumps(recs)
ok = cbor.loads(enc) == recs


def per_call(fn, n):
    t = time.ticks_us()
    for _ in range(n):
        fn()
    return time.ticks_diff(time.ticks_us(), t) / n


def garbage(fn):
    # heap growth with the collector off: what the call leaves for the GC, result included
    # (frames the VM frees at once are not counted, unlike micropython.mem_total)
    gc.collect()
    gc.disable()
    a = gc.mem_alloc()
    fn()
    g = gc.mem_alloc() - a
    gc.enable()
    return g


rounds = {"enc": [], "dec": [], "jenc": [], "jdec": []}
for _ in range(%(rounds)d):
    # interleaved, so drift on a busy machine hits every measurement alike
    rounds["enc"].append(per_call(lambda: cbor.dumps(recs), 20))
    rounds["dec"].append(per_call(lambda: cbor.loads(enc), 20))
    rounds["jenc"].append(per_call(lambda: json.dumps(recs), 20))
    rounds["jdec"].append(per_call(lambda: json.loads(txt), 20))

body = bytes((i * 7 + 3) & 0xFF for i in range(1024))
wire = framing.encode_frame(body) * 8
dec_whole = framing.FrameDecoder(1024)
dec_chunks = framing.FrameDecoder(1024)
mv = memoryview(wire)
chunks = [mv[i:i + 64] for i in range(0, len(wire), 64)]


def feed_chunks():
    for c in chunks:
        dec_chunks.feed(c)


frames = {"whole": [], "chunks": [], "encode": []}
for _ in range(5):
    frames["whole"].append(per_call(lambda: dec_whole.feed(wire), 3))
    frames["chunks"].append(per_call(feed_chunks, 3))
    frames["encode"].append(per_call(lambda: framing.encode_frame(body), 20))

print(json.dumps({
    "ok": ok and dec_whole.frames == dec_chunks.frames == 8 * 5 * 3 and not dec_chunks.dropped,
    "rounds": rounds, "frames": frames, "wire_len": len(wire),
    "cbor_bytes": len(enc), "json_bytes": len(txt),
    "alloc_enc": garbage(lambda: cbor.dumps(recs)),
    "alloc_dec": garbage(lambda: cbor.loads(enc)),
    "alloc_jenc": garbage(lambda: json.dumps(recs)),
    "alloc_jdec": garbage(lambda: json.loads(txt)),
    "cbor_ram": cbor_ram, "framing_ram": framing_ram,
}))
"""


def host_figures():
    recs = records()
    enc = host_cbor.dumps(recs)
    assert host_cbor.loads(enc) == recs

    def per_call(fn, n=200):
        t = time.perf_counter()
        for _ in range(n):
            fn()
        return (time.perf_counter() - t) / n * 1e6

    ours, bare = [], []
    for _ in range(ROUNDS):
        ours.append(per_call(lambda: host_cbor.loads(host_cbor.dumps(recs))))
        bare.append(per_call(lambda: cbor2.loads(cbor2.dumps(recs))))
    body = bytes((i * 7 + 3) & 0xFF for i in range(1024))
    wire = host_framing.encode_frame(body) * 64
    dec = host_framing.FrameDecoder(1024)
    t = time.perf_counter()
    assert len(dec.feed(wire)) == 64
    feed_s = time.perf_counter() - t
    return statistics.median(ours), statistics.median(bare), len(wire) / feed_s


def main():
    vm = mp.run_json(VM_CODE % {"rounds": ROUNDS}, heap="110K")
    if not vm["ok"]:
        raise SystemExit("device codec or framing gave wrong results: figures not printed")
    r = vm["rounds"]
    per_round = [(e + d) / (je + jd) for e, d, je, jd in zip(r["enc"], r["dec"], r["jenc"],
                                                              r["jdec"])]
    med = {k: statistics.median(v) for k, v in r.items()}
    ratio = statistics.median(per_round)
    print("Device CBOR, 20 SenML records, micropython unix VM, 110 KB heap, median of "
          f"{ROUNDS} interleaved rounds:")
    print(f"  cbor.dumps {med['enc']:7.1f} us   cbor.loads {med['dec']:7.1f} us   "
          f"({vm['cbor_bytes']} bytes)")
    print(f"  json.dumps {med['jenc']:7.1f} us   json.loads {med['jdec']:7.1f} us   "
          f"({vm['json_bytes']} bytes, built-in C)")
    print(f"  ratio (cbor dumps+loads) / (json dumps+loads): {ratio:.2f}  "
          f"(per-round range {min(per_round):.2f}-{max(per_round):.2f}; target <= {TARGET})"
          f"  {'OK' if ratio <= TARGET else 'ABOVE TARGET'}")
    print(f"  heap left for the GC per call: dumps {vm['alloc_enc']} B, loads {vm['alloc_dec']} B "
          f"(json: {vm['alloc_jenc']} B, {vm['alloc_jdec']} B; the decoded records alone are "
          "most of a loads)")
    print(f"  RAM held after import (64-bit VM, from source): cbor {vm['cbor_ram']} B, "
          f"framing {vm['framing_ram']} B")
    f = vm["frames"]
    whole = vm["wire_len"] / statistics.median(f["whole"]) * 1e6
    chunks = vm["wire_len"] / statistics.median(f["chunks"]) * 1e6
    enc_rate = 1024 / statistics.median(f["encode"]) * 1e6
    print("Device framing, 1 KB bodies:")
    print(f"  FrameDecoder.feed: {whole / 1024:8.0f} KB/s whole, {chunks / 1024:8.0f} KB/s in "
          f"64-byte reads = {chunks / BAUD_BPS:.0f} x the 115200-baud rate")
    print(f"  encode_frame:      {enc_rate / 1024:8.0f} KB/s = {enc_rate / BAUD_BPS:.0f} x the "
          "115200-baud rate")
    ours, bare, feed_rate = host_figures()
    print("Host:")
    print(f"  edgekit cbor dumps+loads {ours:.1f} us vs bare cbor2 {bare:.1f} us: "
          f"{ours / bare:.2f} x (strict checks and RFC 8949 key order)")
    print(f"  FrameDecoder.feed {feed_rate / 1e6:.1f} MB/s")


if __name__ == "__main__":
    main()
