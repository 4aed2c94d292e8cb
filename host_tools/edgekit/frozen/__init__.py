"""Frozen firmware images: the firmware compiled into a MicroPython image, as boards without
PSRAM need it (docs/flashing.md), and the board-accurate 32-bit unix VM built the same way.

    sources.py    which firmware files a device kind's image freezes, and their digest
    manifest.py   the upstream `manifest.py` that freezes them (unix VM, esp32, rp2)
    unixvm.py     build the 32-bit unix VM with the firmware frozen (`make frozen-vm`)
    mpsrc.py      where MicroPython's source comes from (MICROPYTHON_SRC / the archive)
"""
