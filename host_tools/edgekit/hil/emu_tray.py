"""The HIL suite against a tray of emulated boards seen as a bench sees real ones.

    python -m edgekit.hil.emu_tray [--boards 4] [--board esp32] [--seed N] [-- PYTEST ARGS]

Starts the boards with the `edgekit emu` CLI (real time, one device kind per board, as a bench
tray has one rig per slot), serves their rig with `edgekit emu rig`, then runs
`pytest hil_tests --board serial:PTY --rig FILE` (once per board) in a subprocess whose
EDGEKIT_HOME is another directory: the test process cannot reach the emulator, only the
boards' serial ports and the rig's line protocol. Stops everything afterwards and exits with
pytest's status. `make test` runs it (docs/hil.md has the figures).
"""
import argparse
import json
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

from edgekit.emu.scratch import scratch_dir
from edgekit.firmware_tree import KINDS

# Tests this run leaves out, each with the reason (printed): open bugs found by running the
# suite on serial ports, so that the rest keeps proving something in `make test`.
KNOWN = {}


def _edgekit(env, *args):
    out = subprocess.run([sys.executable, "-c", "from edgekit.cli import main; main()", *args],
                         env=env, capture_output=True, text=True, timeout=120)
    if out.returncode != 0:
        raise SystemExit(f"edgekit {' '.join(args)} failed: {out.stderr.strip()}")
    return out.stdout


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    argv = argv[:argv.index("--")] if "--" in argv else argv
    ap = argparse.ArgumentParser(prog="python -m edgekit.hil.emu_tray", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--boards", type=int, default=4, help="tray size (default 4)")
    ap.add_argument("--board", default="esp32", help="board definition (default esp32)")
    ap.add_argument("--seed", type=int, help="--hil-shuffle seed (default: a new one)")
    ap.add_argument("--max-real-wait", type=float, default=3.0,
                    help="tests needing more real time than this skip (default 3 s)")
    args = ap.parse_args(argv)
    seed = args.seed if args.seed is not None else random.randrange(1 << 20)
    # Short: the supervisor's unix socket path is limited to 107 bytes.
    home = Path(scratch_dir("ektray-"))      # the boards' flash in RAM: edgekit.emu.scratch
    emu_env = dict(os.environ, EDGEKIT_HOME=str(home / "emu-home"))
    test_env = dict(os.environ, EDGEKIT_HOME=str(home / "test-home"))
    rig = None
    try:
        ids = []
        for i in range(args.boards):
            kind = KINDS[i % len(KINDS)]
            info = json.loads(_edgekit(emu_env, "emu", "start", "--board", args.board,
                                       "--kind", kind, "--time", "real", "--id",
                                       f"tray{i}-{kind}", "--json"))
            ids.append(info["id"])
        rig = subprocess.Popen([sys.executable, "-c", "from edgekit.cli import main; main()",
                                "emu", "rig", *ids, "--dir", str(home / "rigs"), "--json"],
                               env=emu_env, stdout=subprocess.PIPE, text=True)
        served = json.loads(rig.stdout.readline() or "{}")
        if "boards" not in served:
            raise SystemExit("edgekit emu rig did not start (see its error above)")
        cmd = [sys.executable, "-m", "pytest", "hil_tests", "-q", "-p", "no:cacheprovider",
               "--hil-shuffle", str(seed), "--max-real-wait", str(args.max_real_wait)]
        for bid in ids:
            cmd += ["--board", f"serial:{served['boards'][bid]['pty']}",
                    "--rig", served["boards"][bid]["rig"]]
        if KNOWN:
            cmd += ["-k", " and ".join(f"not {name}" for name in KNOWN)]
        print(f"edgekit HIL on a tray of {len(ids)} emulated boards through serial ports "
              f"and the rig only (seed {seed})", flush=True)
        for name, why in KNOWN.items():
            print(f"  left out {name}: {why}", flush=True)
        return subprocess.run(cmd + extra, env=test_env).returncode
    finally:
        if rig is not None:
            rig.terminate()
            rig.wait(timeout=10)
        try:
            _edgekit(emu_env, "emu", "stop", "--all")
        finally:
            shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
