"""What each kind's OTA bundle carries now that a bundle holds only core + its kind's folder
(edgekit.firmware_tree), against the old build (firmware/lib, where every kind's helper
modules lived, plus the kind's own app and schema).

Per kind: modules, installed bytes (.mpy on the device's flash) and wire bytes (the deflated
transfer form) for both builds, and the share of the old bundle that was other kinds' code.

    python bench/bench_bundle_size.py
"""
from edgekit import firmware_tree as ft
from edgekit.ota import bundle as bundle_mod
from edgekit.paths import PROTOCOL_DIR


def figures(b):
    return len(b.files), sum(f["size"] for f in b.files), sum(len(p) for p in b.payloads)


def old_sources(kind):
    apps = {f"{k}{suffix}" for k in ft.KINDS for suffix in ("", "_schema") if k != kind}
    return [p for p in ft.sources() if p.stem not in apps] + [PROTOCOL_DIR / "catalog.py"]


def main():
    print(f"{'kind':12} {'modules':>13} {'installed bytes':>22} {'wire bytes':>20}  "
          "other kinds' code in the old bundle")
    for kind in ft.KINDS:
        now = figures(bundle_mod.build("esp32", kind, "1.0.0", seq=1))
        old = figures(bundle_mod.build("esp32", kind, "1.0.0", seq=1, sources=old_sources(kind)))
        print(f"{kind:12} {old[0]:>5} -> {now[0]:<5} {old[1]:>9} -> {now[1]:<9} "
              f"{old[2]:>8} -> {now[2]:<8}  {100 * (old[1] - now[1]) / old[1]:4.1f}% "
              f"installed, {100 * (old[2] - now[2]) / old[2]:4.1f}% on the wire")


if __name__ == "__main__":
    main()
