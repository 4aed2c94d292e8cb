"""Provisioning over the emulated 115200 link: seconds per device, and the wall time of 8
devices in parallel (the CLI's thread pool) against one, measured in the same run."""
import contextlib
import io
import json
import os
import tempfile
import time
from pathlib import Path

from edgekit.cli import main as edgekit
from edgekit.emu import Emulator
from edgekit.hil.devices import TEST_PASSPHRASE, HilFleet
from edgekit.hil.targets import BoardSpec, EmulatedTarget


def timed(fn):
    t = time.monotonic()
    fn()
    return time.monotonic() - t


def provision_cli(fleet, targets):
    """`edgekit provision --ports ...` in-process, as a technician runs it."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = edgekit(["provision", "--ports", *[t.url for t in targets], "--kind",
                        "water_meter", "--site", "bench", "--keys", str(fleet.keystore.path),
                        "--registry", str(fleet.registry.path), "--json"])
    report = json.loads(out.getvalue())
    assert code == 0 and report["ok"] == len(targets), report


def main():
    fleet = HilFleet(Path(tempfile.mkdtemp()))
    os.environ["EDGEKIT_KEY_PASSPHRASE"] = TEST_PASSPHRASE
    with Emulator() as emu:
        for board in ("esp32", "rp2040"):
            one = [EmulatedTarget(emu, BoardSpec(f"emu:{board}"))]
            single = timed(lambda: provision_cli(fleet, one))
            eight = [EmulatedTarget(emu, BoardSpec(f"emu:{board}")) for _ in range(8)]
            parallel = timed(lambda: provision_cli(fleet, eight))
            for t in one + eight:
                t.close()
            print(f"{board}: one device {single:.2f} s; 8 in parallel {parallel:.2f} s wall "
                  f"({parallel / single:.2f}x one device, {single * 8 / parallel:.1f}x faster "
                  f"than one after another)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
