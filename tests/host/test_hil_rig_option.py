"""A damaged --rig file stops the HIL run once, with pytest's usage error: one line naming
the file, no traceback."""
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_damaged_rig_file_is_a_usage_error(tmp_path):
    bad = tmp_path / "bench.toml"
    bad.write_bytes(b"[rig\nport = \xff")
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "-p", "no:xdist", str(ROOT / "hil_tests" / "test_cli_monitor.py"),
                           "--rig", str(bad)], capture_output=True, text=True, timeout=120,
                          cwd=ROOT)
    assert proc.returncode == 4, proc.stdout + proc.stderr     # pytest's usage error
    out = proc.stdout + proc.stderr
    assert str(bad) in out and "Traceback" not in out
