"""OTA figures on emulated ESP32 boards (115200 8N1 link, paced by the emulator, real time):
the water-meter bundle pushed raw and deflated, `mpremote fs cp` of the same files in the
same run, a delta after a one-file change, and an 8-device campaign's wall time.

Line rate at 115200 8N1 is 11,520 bytes/s each way; the target is 90% of it as payload
(10,368 B/s). Figures are ratios to that and to mpremote measured here, never asserts.
"""
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from edgekit import catalog as C
from edgekit.emu import Emulator
from edgekit.hil.devices import TEST_PASSPHRASE, HilFleet, provision
from edgekit.hil.targets import BoardSpec, EmulatedTarget
from edgekit.ota import bundle as bundle_mod
from edgekit.ota import campaign
from edgekit.ota.push import Pusher
from edgekit.ota.sign import sign_with_keystore
from edgekit import firmware_tree

LINE = 115200 // 10            # bytes/s: 8N1 is 10 bits a byte
TARGET = 0.9 * LINE


def kb(n):
    return n / 1000.0


def push(dev, b):
    p = Pusher(dev.session, b, dev.public_key)
    t0 = time.monotonic()
    p.offer()
    t1 = time.monotonic()
    p.transfer()
    t2 = time.monotonic()
    p.install()
    result = p.wait_result(timeout=120)
    t3 = time.monotonic()
    if result["status"] != "installed":
        raise SystemExit(f"bench: update did not install: {result}")
    return p.stats, {"offer": t1 - t0, "transfer": t2 - t1, "install+trial": t3 - t2,
                     "total": t3 - t0}


def mpremote_cp(url, files_dir):
    base = ["mpremote", "connect", url]
    t0 = time.monotonic()
    subprocess.run(base + ["exec", "pass"], check=True, capture_output=True, timeout=300)
    t1 = time.monotonic()
    subprocess.run(base + ["fs", "cp", "-r", str(files_dir), ":"], check=True,
                   capture_output=True, timeout=900)
    t2 = time.monotonic()
    return (t2 - t1) - (t1 - t0), t2 - t1     # copy alone (minus connect/reset), all


def heap_of(slot_dir, overlay):
    """Heap bytes the VM spends on the water meter's modules when `overlay` of them come from
    files in `slot_dir` (a real board executes the rest, frozen, from flash: no heap)."""
    from edgekit.paths import BOARDS_DIR, PROTOCOL_DIR
    from edgekit.testing import mp
    from edgekit.testing.mpycache import compile_tree, default_cache
    base = compile_tree([BOARDS_DIR / "hal_common.py", PROTOCOL_DIR / "catalog.py"]
                        + firmware_tree.source_dirs("water_meter"),
                        default_cache() / "bench-ota")
    code = (f"import sys, gc\nsys.path[:] = [{str(base)!r}]\n"
            "import runtime, ota, water_meter\n"           # the frozen part, as a baseline
            f"for m in {list(overlay)!r}:\n    sys.modules.pop(m, None)\n"
            f"sys.path.insert(0, {str(slot_dir)!r})\n"
            "gc.collect()\nb = gc.mem_alloc()\n"
            f"for m in {list(overlay)!r}:\n    __import__(m)\n"
            "gc.collect()\nprint(gc.mem_alloc() - b)\n")
    return int(mp.run(code, heap="4M").split()[-1])


def main():
    tmp = Path(tempfile.mkdtemp(prefix="bench-ota-"))
    fleet = HilFleet(tmp)
    sign = lambda b: sign_with_keystore(b, fleet.keystore, TEST_PASSPHRASE)  # noqa: E731
    raw = sign(bundle_mod.build("esp32", "water_meter", "1.1.0", seq=10, deflate=False))
    zipped = sign(bundle_mod.build("esp32", "water_meter", "1.1.0", seq=10))
    src = tmp / "water_meter.py"
    src.write_text(firmware_tree.app_path("water_meter").read_text()
                   + "\n_BENCH_ONE_FILE_CHANGE = 1\n")
    sources = [s for s in bundle_mod.default_sources("water_meter") if s.name != src.name]
    delta = sign(bundle_mod.build("esp32", "water_meter", "1.1.1", seq=11,
                                  sources=sources + [src]))
    files_dir = tmp / "files"
    files_dir.mkdir()
    for f in raw.files:
        (files_dir / f["name"]).write_bytes(raw.installed(f["index"]))
    installed = raw.manifest[C.K_SIZE]
    everything = [f["name"][:-4] for f in raw.files]
    app_only = ["water_meter", "water_meter_schema", "build_info"]
    full_heap, app_heap = heap_of(files_dir, everything), heap_of(files_dir, app_only)
    print(f"heap the image takes once loaded from a slot (64-bit unix VM; a 32-bit board "
          f"needs less): full bundle {full_heap / 1024:.0f} KB, app-only bundle "
          f"{app_heap / 1024:.0f} KB (x{full_heap / app_heap:.0f}); an ESP32 without PSRAM has "
          f"110 KB of heap in all")
    print(f"water-meter bundle: {len(raw.files)} files, {installed} bytes installed, "
          f"{len(zipped.stream())} bytes deflated ({len(zipped.stream()) / installed:.0%}), "
          f"manifest {len(raw.signed)} bytes")

    with Emulator() as emu:
        def board():
            return EmulatedTarget(emu, BoardSpec("emu:esp32:water_meter"), time_mode="real")

        a = board()
        dev = provision(a, fleet, "water_meter")
        stats, t = push(dev, raw)
        goodput = stats["new_bytes"] / stats["seconds"]
        print(f"OTA raw: {stats['sent_bytes']} B in {t['transfer']:.2f} s of transfer = "
              f"{goodput:.0f} B/s payload = {goodput / LINE:.1%} of line rate "
              f"(target {TARGET:.0f} B/s: x{goodput / TARGET:.2f}); offer {t['offer']:.2f} s, "
              f"install+trial+confirm {t['install+trial']:.2f} s, total {t['total']:.2f} s, "
              f"resent {stats['resent_bytes']} B")
        dev.close()
        cp, cp_all = mpremote_cp(a.url, files_dir)
        mp_rate = installed / cp
        print(f"mpremote fs cp of the same {installed} B: {cp:.2f} s = {mp_rate:.0f} B/s "
              f"({cp_all:.2f} s with its connect and soft reset); OTA raw goodput = "
              f"x{goodput / mp_rate:.2f} mpremote; whole OTA (offer to confirmed) = "
              f"x{cp_all / t['total']:.2f} faster than the whole mpremote copy")
        a.close()

        b = board()
        dev = provision(b, fleet, "water_meter")
        stats, t = push(dev, zipped)
        single = t["total"]
        eff = installed / t["transfer"]
        print(f"OTA deflate: {stats['sent_bytes']} B on the link in {t['transfer']:.2f} s = "
              f"{eff:.0f} B/s installed ({eff / LINE:.0%} of line rate, "
              f"x{eff / mp_rate:.1f} mpremote); offer to confirmed {single:.2f} s")
        stats, t = push(dev, delta)
        print(f"delta after a one-file change: {stats['sent_bytes']} B sent of "
              f"{stats['stream_bytes']} ({stats['held_at_start']} B already on the device), "
              f"transfer {t['transfer']:.2f} s, offer to confirmed {t['total']:.2f} s "
              f"(x{cp_all / t['total']:.1f} faster than mpremote copying the image)")
        dev.close()
        b.close()

        boards = [board() for _ in range(8)]
        ports = {}
        for target in boards:
            d = provision(target, fleet, "water_meter")
            ports[d.id] = target.url
            d.close()
        path = zipped.save(tmp / "wm.ekota")
        cid = "bench-canary-then-all"
        campaign.create(fleet.registry.path, cid, path, zipped,
                        campaign.parse_stages("1,100%"), 0.0, only=list(ports))
        t0 = time.monotonic()
        report = campaign.Runner(fleet.registry.path, cid, zipped, fleet.keystore,
                                 fleet.signer("operator"), ports, parallel=8).run()
        wall = time.monotonic() - t0
        print(f"8-device campaign (a canary, then the other 7 in parallel): {wall:.1f} s wall, "
              f"{report['counts']}; x{8 * single / wall:.1f} faster than 8 single pushes "
              f"one after the other ({8 * single:.0f} s)")
        for target in boards:
            target.close()
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
