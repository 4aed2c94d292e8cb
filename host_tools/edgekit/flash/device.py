"""The other end of the cable: a MicroPython REPL, reached through mpremote's transport.

    with Connection(port) as conn:      # raw REPL (after a soft reset: a clean heap)
        info = probe(conn)              # MicroPython version, port, machine, heap, flash
        check_target(info, image, wipe) # TargetError if the image is not for this device

mpremote's SerialTransport does the raw REPL and raw-paste; this module adds the recovery
from an interrupted transfer (scripts.PRELUDE) and turns its errors into edgekit errors.
"""
import json

import serial
from mpremote.transport import TransportError, TransportExecError
from mpremote.transport_serial import SerialTransport

from edgekit.errors import EdgekitError, LinkError
from edgekit.flash import scripts
from edgekit.transport import parse_port


class TargetError(EdgekitError):
    """The device is not what the image is built for, or not in a state to take it."""


class DeviceError(EdgekitError):
    """Code the flash tool ran on the device failed; the message carries its traceback."""


class Connection:
    """A raw-REPL session with one device."""

    def __init__(self, port, baudrate=115200):
        self.port = port
        self.url = parse_port(port)
        self.baudrate = baudrate
        self.t = None

    def open(self):
        try:
            self.t = SerialTransport(self.url, baudrate=self.baudrate)
        except (TransportError, serial.SerialException, OSError) as exc:
            raise LinkError(f"cannot open {self.url}: {exc}. Check the cable and the port "
                            "name (`edgekit emu list` shows emulated boards)") from None
        self.guard(self._enter)
        return self

    def _enter(self):
        # A transfer cut off mid-frame leaves the device waiting for its bytes: complete
        # that frame and stop the receiver before mpremote asks for the raw REPL.
        self.t.serial.write(scripts.PRELUDE)
        self.t.enter_raw_repl(soft_reset=True)

    def guard(self, fn, *args):
        """Run fn(*args), mapping link failures to LinkError."""
        try:
            return fn(*args)
        except TransportExecError as exc:
            raise DeviceError(f"the device failed running the flash tool's code: "
                              f"{exc.error_output.strip()[-600:]}") from None
        except (TransportError, serial.SerialException, OSError) as exc:
            raise LinkError(f"lost the REPL of {self.url}: {exc}. Rerun the same command: "
                            "it completes the install") from None

    @property
    def serial(self):
        return self.t.serial

    def exec(self, code: str) -> str:
        return self.guard(self.t.exec, code).decode("utf-8", "replace")

    def exec_json(self, code: str):
        lines = [ln for ln in self.exec(code).splitlines() if ln.strip()]
        try:
            return json.loads(lines[-1])
        except (IndexError, ValueError):
            raise DeviceError(f"the device answered {lines[-3:]!r}, not a JSON report") from None

    def soft_reset(self):
        """A fresh VM (boot.py only, then the raw REPL): all of the heap back."""
        self.guard(self.t.enter_raw_repl, True)

    def reboot(self):
        """Leave the raw REPL and soft-reboot from the friendly one: boot.py, then main.py."""
        def go():
            self.t.exit_raw_repl()
            self.t.serial.write(b"\x04")
            self.t.read_until(1, b"soft reboot", timeout=10)
        self.guard(go)

    def close(self):
        if self.t is not None:
            try:
                self.t.close()
            except (OSError, serial.SerialException):
                pass        # a pty that went away, or a socket already closed
            self.t = None

    def __enter__(self):
        return self.open() if self.t is None else self

    def __exit__(self, *exc):
        self.close()


class DeviceInfo:
    """What scripts.PROBE reported (`raw`), with the questions the checks ask."""

    def __init__(self, raw: dict):
        self.raw = dict(raw)
        for key in ("platform", "machine", "mpy", "emulated", "board_json", "provisioned",
                    "deflate", "sha256", "fs_block", "fs_free", "fs_size", "heap_free",
                    "heap_total", "frozen"):
            setattr(self, key, raw.get(key))
        self.version = tuple(raw.get("version") or ())
        self.word_bits = 64 if raw.get("maxsize", 0) > 2 ** 32 else 32

    @property
    def version_text(self):
        return ".".join(str(v) for v in self.version)

    @property
    def board(self):
        """The board this device says it is (emulator, or a previous flash), else None."""
        return self.emulated or self.board_json

    def describe(self):
        return {"micropython": self.version_text, "port": self.platform,
                "machine": self.machine, "board": self.board, "emulated": bool(self.emulated),
                "word_bits": self.word_bits, "heap_total": self.heap_total,
                "heap_free": self.heap_free, "fs_size": self.fs_size, "fs_free": self.fs_free,
                "deflate": self.deflate, "provisioned": self.provisioned,
                "frozen": None if not self.frozen else
                {k: self.frozen.get(k) for k in ("board", "version", "kinds")}}


def probe(conn) -> DeviceInfo:
    return DeviceInfo(conn.exec_json(scripts.render(scripts.PROBE)))


def guess_board(info: DeviceInfo, boards) -> str:
    """The name of the board definition (of `boards`: {name: definition}) this device is,
    or None: what it says it is, else the one whose port and machine match, the most
    specific machine ending winning ("...with SPIRAM with ESP32" is a WROVER's build, which
    "...with ESP32" matches too)."""
    if info.board in boards:
        return info.board
    found = [(len(b["machine_suffix"]), n) for n, b in sorted(boards.items())
             if b.get("port") == info.platform and b.get("machine_suffix")
             and str(info.machine).endswith(b["machine_suffix"])]
    best = [n for size, n in found if size == max(found)[0]] if found else []
    return best[0] if len(best) == 1 else None


def _version(text):
    try:
        return tuple(int(p) for p in str(text).split("."))
    except ValueError:
        raise TargetError(f"runtime version {text!r} is not MAJOR.MINOR.PATCH") from None


def check_board(info: DeviceInfo, board_def: dict, wipe=False):
    """TargetError unless the device is the board `board_def` describes."""
    name, port = board_def["name"], board_def.get("port")
    if info.emulated:
        if info.emulated != name:
            raise TargetError(f"this is an emulated {info.emulated} board; the image is for "
                              f"{name}: flash it with --board {info.emulated}, or start a "
                              f"{name} board")
        return
    if info.platform != port:
        raise TargetError(f"this device runs MicroPython for {info.platform!r} ({info.machine});"
                          f" the image is for {name} (port {port!r}, {board_def.get('mcu')}): "
                          f"pick the --board that matches the device")
    suffix = board_def.get("machine_suffix")
    if suffix and not str(info.machine).endswith(suffix):
        raise TargetError(f"this device is a {info.machine!r}; board {name} is a "
                          f"{board_def.get('mcu')} (MicroPython calls it '...{suffix}'): "
                          f"pick the --board that matches the device")
    if info.board_json and info.board_json != name and not wipe:
        raise TargetError(f"this device was flashed as board {info.board_json}, not {name}: "
                          f"use --board {info.board_json}, or --wipe to start over as {name}")


def check_runtime(info: DeviceInfo, runtime: str, mpy_header: bytes):
    """TargetError unless the device's MicroPython can import the image's .mpy files."""
    want = _version(runtime)
    if info.version[:3] != want[:3]:
        raise TargetError(f"the device runs MicroPython {info.version_text}; the image is "
                          f"compiled for {runtime}: put MicroPython {runtime} on it (--runtime "
                          f"IMAGE), or change the board definition's runtime after upgrading")
    if len(mpy_header) >= 4 and info.mpy:
        if mpy_header[1] != info.mpy & 0xFF:
            raise TargetError(f"the device imports .mpy version {info.mpy & 0xFF}; the image's "
                              f"files are version {mpy_header[1]}: rebuild with the mpy-cross "
                              f"of MicroPython {info.version_text}")
        arch = mpy_header[2] >> 2
        if arch and (mpy_header[2] & 3) != (info.mpy >> 8) & 3:
            raise TargetError("the image holds native code of another .mpy sub-version: "
                              "rebuild it for this runtime")


def check_state(info: DeviceInfo, wipe=False):
    if not info.sha256:
        raise TargetError("the device's MicroPython has no hashlib.sha256, which the flash "
                          "tool needs to verify every file: use a standard build")
    if info.provisioned and not wipe:
        raise TargetError("the device is provisioned (it holds an identity in /ek): update "
                          "its firmware with `edgekit ota push` (signed, with rollback), or "
                          "pass --wipe to erase it back to factory state (its identity, "
                          "config and data are lost: retire it in the registry)")


def check_target(info: DeviceInfo, image, wipe=False):
    check_board(info, image.board_def, wipe)
    check_runtime(info, image.runtime, image.mpy_header)
    check_state(info, wipe)
