"""Shared fixtures: one in-process emulator per test module, and a real mpremote runner."""
import os
import subprocess
import sys
import time

import pytest

from edgekit.emu import Emulator


@pytest.fixture(scope="module")
def emu():
    with Emulator() as e:
        yield e


def mpremote(url, *args, timeout=60):
    """Run the real mpremote CLI against `url`; returns stdout, raises on failure."""
    env = dict(os.environ)
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    proc = subprocess.run([sys.executable, "-m", "mpremote", "connect", url, *args],
                          capture_output=True, timeout=timeout, env=env)
    if proc.returncode != 0:
        raise AssertionError(f"mpremote {' '.join(args)} failed ({proc.returncode}):\n"
                             f"{proc.stdout.decode(errors='replace')}\n"
                             f"{proc.stderr.decode(errors='replace')}")
    return proc.stdout.decode()


def read_until(port, marker, timeout=10.0):
    """Read a pyserial port until `marker` shows up; returns everything read."""
    data = b""
    end = time.monotonic() + timeout
    while marker not in data:
        if time.monotonic() > end:
            raise AssertionError(f"no {marker!r} within {timeout} s; got {data[-300:]!r}")
        data += port.read(max(1, port.in_waiting))
    return data


def raw_exec(port, code, timeout=10.0):
    """Run `code` in the board's raw REPL over an open pyserial port; returns stdout."""
    port.write(b"\r\x03")
    time.sleep(0.05)
    port.reset_input_buffer()
    port.write(b"\r\x01")
    read_until(port, b"raw REPL; CTRL-B to exit\r\n>", timeout)
    port.write(code.encode() + b"\x04")
    out = read_until(port, b"\x04>", timeout)
    body = out.split(b"OK", 1)[1]
    stdout, err = body.split(b"\x04")[:2]
    if err.strip():
        raise AssertionError(f"board raised:\n{err.decode(errors='replace')}")
    port.write(b"\r\x02")
    return stdout.decode(errors="replace")


def wait_file(path, predicate=lambda text: True, timeout=15.0, binary=False):
    """Wait until the board has written `path` and `predicate(text)` holds; returns text
    (bytes with binary=True)."""
    end = time.monotonic() + timeout
    text = None
    while True:
        try:
            text = path.read_bytes() if binary else path.read_text()
        except FileNotFoundError:
            text = None
        if text is not None and predicate(text):
            return text
        if time.monotonic() > end:
            raise AssertionError(f"{path}: condition not met within {timeout} s; "
                                 f"content {text!r}")
        time.sleep(0.02)
