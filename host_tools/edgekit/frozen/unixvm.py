"""The board-accurate VM: MicroPython's unix port built 32-bit (i686) with the firmware frozen.

The PyPI `micropython` is a 64-bit build that loads the firmware into its heap: objects are
twice as wide as on an ESP32 or RP2040 and every module's bytecode sits in the heap, so its
heap figures need an "allowance" and are off in both directions. Built 32-bit, with the
firmware frozen as a board image freezes it, the VM counts like the boards do: the emulator
runs it with the board's heap exactly (`edgekit emu start --rom frozen32`).

    python -m edgekit.frozen.unixvm [--kind all|KIND] [--check]   (`make frozen-vm`)

Output: build/frozen-vm/micropython and build/frozen-vm/stamp.json (the digest of what it
froze: a VM built from other firmware sources is stale and is refused, not run).
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from edgekit.errors import EdgekitError
from edgekit.frozen import manifest as manifest_mod
from edgekit.frozen import mpsrc, sources
from edgekit.paths import cache_dir

CROSS = "i686-linux-gnu-"
# Debian/Ubuntu: the i686 cross compiler (its gcc-12 package named too: in one apt run here
# the metapackage alone was refused as "held broken packages") and gcc-multilib.
APT = "apt-get install -y gcc-multilib gcc-12-i686-linux-gnu gcc-i686-linux-gnu"
# What the standard variant builds but the boards lack or the build cannot find offline.
MAKE_VARS = ("VARIANT=standard", "MICROPY_PY_FFI=0", "MICROPY_PY_BTREE=0", "MICROPY_PY_SSL=0",
             "MICROPY_SSL_MBEDTLS=0")
BOARD = "emu"
# Bumped when what the build freezes changes shape (not only the sources): stale VMs rebuild.
LAYOUT = "2: frozen_fw"


class FrozenVmError(EdgekitError):
    """The frozen VM cannot be built, or is missing or stale."""


def out_dir() -> Path:
    return Path(os.environ.get("EDGEKIT_FROZEN_VM_DIR") or cache_dir() / "frozen-vm")


def binary() -> Path:
    return out_dir() / "micropython"


def wanted_digest(kind=sources.ALL) -> str:
    srcs = sources.firmware_sources(kind) + sources.hal_sources("unix")
    return sources.digest(srcs, f"{LAYOUT}:{kind}:{' '.join(MAKE_VARS)}".encode())


def status(kind=sources.ALL):
    """(usable, reason): the VM is built, from these firmware sources."""
    try:
        stamp = json.loads((out_dir() / "stamp.json").read_text())
    except (OSError, ValueError):
        return False, "the frozen 32-bit VM is not built (make frozen-vm)"
    if not binary().exists():
        return False, f"{binary()} is missing (make frozen-vm)"
    if stamp.get("digest") != wanted_digest(kind):
        return False, ("the frozen 32-bit VM was built from other firmware sources: "
                       "rebuild it (make frozen-vm)")
    return True, ""


def toolchain_missing():
    """None if the i686 toolchain is there, else the one command that installs it."""
    if shutil.which(CROSS + "gcc") and shutil.which("make") and shutil.which("gcc"):
        return None
    return APT


def _run(cmd, log):
    log.write(("$ " + " ".join(cmd) + "\n").encode())
    log.flush()
    proc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT)
    if proc.returncode:
        raise FrozenVmError(f"{' '.join(cmd[:3])} ... failed (exit {proc.returncode}): "
                            f"see {log.name}")


def build(kind=sources.ALL, jobs=None) -> Path:
    """Build (incrementally) the 32-bit unix VM with `kind`'s firmware frozen; return it."""
    missing = toolchain_missing()
    if missing:
        raise FrozenVmError(f"the 32-bit toolchain is missing: run `sudo {missing}` "
                            "(Debian/Ubuntu), then `make frozen-vm` again")
    src = mpsrc.source_dir()
    out = out_dir()
    out.mkdir(parents=True, exist_ok=True)
    from edgekit.flash.image import firmware_version
    manifest = manifest_mod.write("unix", kind, BOARD, firmware_version(), out)
    # The build insists on a micropython-lib folder (it tests for README.md in it) even when
    # the manifest uses none.
    lib = out / "mpy-lib"
    lib.mkdir(exist_ok=True)
    (lib / "README.md").write_text("placeholder: the frozen VM uses no micropython-lib\n")
    jobs = str(jobs or os.cpu_count() or 1)
    obj = out / "obj"
    t0 = time.monotonic()
    with open(out / "build.log", "wb") as log:
        _run(["make", "-j", jobs, "-C", str(src / "mpy-cross")], log)
        _run(["make", "-j", jobs, "-C", str(src / "ports" / "unix"), f"BUILD={obj}",
              f"CROSS_COMPILE={CROSS}", *MAKE_VARS, f"FROZEN_MANIFEST={manifest}",
              f"MPY_LIB_DIR={lib}"], log)
    built = obj / "micropython"
    if not built.exists():
        raise FrozenVmError(f"the build made no {built}: see {out / 'build.log'}")
    # Replaced, never written over: boards may be running the old binary (ETXTBSY).
    tmp = binary().with_name(binary().name + ".new")
    shutil.copyfile(built, tmp)
    tmp.chmod(0o755)
    os.replace(tmp, binary())
    (out / "stamp.json").write_text(json.dumps({
        "digest": wanted_digest(kind), "kind": kind, "source": str(src),
        "seconds": round(time.monotonic() - t0, 1)}))
    return binary()


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m edgekit.frozen.unixvm",
                                 description="Build the 32-bit unix MicroPython with the "
                                             "firmware frozen (the board-accurate VM).")
    ap.add_argument("--kind", default=sources.ALL,
                    help="device kind to freeze (default: all kinds; frozen modules cost "
                         "no heap until imported)")
    ap.add_argument("--check", action="store_true",
                    help="only say whether the built VM is current (exit 1 if not)")
    args = ap.parse_args(argv)
    if args.check:
        ok, why = status(args.kind)
        print("frozen VM: " + ("current" if ok else why))
        return 0 if ok else 1
    try:
        path = build(args.kind)
    except EdgekitError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    stamp = json.loads((out_dir() / "stamp.json").read_text())
    print(f"frozen VM: {path} ({stamp['seconds']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
