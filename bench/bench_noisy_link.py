"""What a noisy cable costs an operator's command: a provisioned water meter (emulated, paused
time) answers `diag` (a ~750-byte signed answer) through a link that flips, drops or doubles a
fraction of its bytes, with the host's session resending a damaged exchange at once (now)
and only after its timeout (before: the reference, same run, same seeds).

    python bench/bench_noisy_link.py              # 100 exchanges per case
    EDGEKIT_BENCH_EXCHANGES=300 python bench/bench_noisy_link.py

Printed per noise rate: wall ms per exchange (mean), exchanges given up (3 silent attempts),
resends, and the ratio of the two. No asserts: a figure to read.
"""
import os
import tempfile
import time
from pathlib import Path

from edgekit import catalog as C
from edgekit.emu import Emulator
from edgekit.errors import LinkError
from edgekit.hil.devices import HilFleet, provision
from edgekit.hil.targets import BoardSpec, EmulatedTarget

N = int(os.environ.get("EDGEKIT_BENCH_EXCHANGES", "100"))
RATES = (0.0, 2e-4, 1e-3)
TIMEOUT_S = 1.0         # the nightly soak's --timeout through noise


def run(dev, board, rate, fast, seed):
    s = dev.session
    s.fast_resend = fast
    board.noise(rate, seed=seed)
    before = dict(s.stats)
    lost = 0
    t0 = time.perf_counter()
    for _ in range(N):
        try:
            s.request(C.COMMAND, {C.K_NAME: "diag", C.K_ARGS: {}}, timeout=TIMEOUT_S,
                      expect=C.COMMAND_RESULT)
        except LinkError:
            lost += 1
    took = (time.perf_counter() - t0) / N * 1000
    board.noise(0)
    time.sleep(0.3)                 # what the last exchange left in flight
    s.receive(timeout=0.2)
    s._pending.clear()
    return took, lost, s.stats["retransmits"] - before["retransmits"]


def main():
    with Emulator() as emu, tempfile.TemporaryDirectory() as tmp:
        target = EmulatedTarget(emu, BoardSpec("emu:esp32:water_meter"), time_mode="paused")
        dev = provision(target, HilFleet(Path(tmp)), "water_meter")
        board = target.handle
        print(f"{N} diag exchanges per case, --timeout {TIMEOUT_S:g} s, 3 attempts")
        for i, rate in enumerate(RATES):
            ref = run(dev, board, rate, fast=False, seed=11 + i)
            now = run(dev, board, rate, fast=True, seed=11 + i)
            print(f"noise {rate:g}/byte: {now[0]:.0f} ms an exchange (resent at once; "
                  f"{now[1]} given up, {now[2]} resends) vs {ref[0]:.0f} ms (resent after "
                  f"the timeout; {ref[1]} given up, {ref[2]} resends): "
                  f"{now[0] / ref[0]:.2f}x the time")
        dev.close()
        target.close()


if __name__ == "__main__":
    main()
