"""One run of a board's MicroPython VM: a child process on a pty with a side channel.

The `micropython` command is a CPython launcher embedding the unix port. We start that
embedded VM directly (`python -I -S -c "...run_main(...)"`): skipping site and the venv
launcher saves ~5 ms a boot and ~1 MB of PSS a board, which adds up in a 200-board fleet.
"""
import ctypes
import fcntl
import importlib.util
import os
import pty
import signal
import socket
import struct
import subprocess
import sys
import termios
import tty

from edgekit.emu.fds import lift, lift_socket
from edgekit.paths import BOARDS_DIR, micropython_binary

LAUNCHER = BOARDS_DIR / "emu_launch.py"
_PR_SET_PDEATHSIG = 1
_CLK_TCK = os.sysconf("SC_CLK_TCK")


def _vm_command():
    spec = importlib.util.find_spec("micropython_run")
    if spec is None or not spec.origin:
        return [micropython_binary()]
    where = os.path.dirname(spec.origin)
    code = (f"import sys; sys.path.insert(0, {where!r}); import micropython_run; "
            "sys.exit(micropython_run.run_main(sys.argv[1:]))")
    return [sys.executable, "-I", "-S", "-c", code, "micropython"]


_VM_COMMAND = None


def _die_with_parent():
    # The VM must not outlive its supervisor (a crashed test run would leak boards).
    try:
        ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        pass


class VM:
    """Spawned at construction; `on_exit(returncode)` runs on the loop when it ends."""

    def __init__(self, loop, *, heap, flash_dir, rom_dir, start, bare, fs_size, block_size,
                 on_exit, command=None):
        global _VM_COMMAND
        if _VM_COMMAND is None:
            _VM_COMMAND = _vm_command()
        self.loop = loop
        self.on_exit = on_exit
        master, slave = pty.openpty()
        tty.setraw(slave)
        attrs = termios.tcgetattr(slave)
        attrs[3] &= ~(termios.ECHO | termios.ISIG | termios.ICANON | termios.IEXTEN)
        termios.tcsetattr(slave, termios.TCSANOW, attrs)
        master, slave = lift(master), lift(slave)
        os.set_blocking(master, False)
        self.master = master
        self.slave = slave          # kept open: FIONREAD on it tells input the VM has not read
        side, vm_side = socket.socketpair()
        self.side, vm_side = lift_socket(side), lift_socket(vm_side)
        argv = (command or _VM_COMMAND) + ["-X", f"heapsize={heap}", "-i", str(LAUNCHER),
                              str(vm_side.fileno()), str(flash_dir), str(rom_dir), start,
                              "1" if bare else "0", str(fs_size), str(block_size)]
        try:
            self.proc = subprocess.Popen(
                argv, stdin=slave, stdout=slave, stderr=slave, cwd=str(flash_dir),
                pass_fds=[vm_side.fileno()], start_new_session=True,
                preexec_fn=_die_with_parent, env={"PATH": os.environ.get("PATH", "")})
        finally:
            vm_side.close()
        self.pid = self.proc.pid
        self.side.setblocking(False)
        self.returncode = None
        self._pidfd = lift(os.pidfd_open(self.pid))
        loop.add_reader(self._pidfd, self._exited)

    def _exited(self):
        self.loop.remove_reader(self._pidfd)
        os.close(self._pidfd)
        self._pidfd = None
        self.returncode = self.proc.wait()
        self.on_exit(self.returncode)

    @property
    def alive(self):
        return self.returncode is None

    def unread_input(self):
        """Bytes the host sent that the VM has not read yet."""
        buf = fcntl.ioctl(self.slave, termios.FIONREAD, b"\0\0\0\0")
        return struct.unpack("i", buf)[0]

    def sigint_armed(self):
        """True while the VM would turn Ctrl-C into KeyboardInterrupt (kbd_intr armed).

        The unix port installs its SIGINT handler only while running code with kbd_intr(3)
        and restores SIG_DFL at the prompt and under kbd_intr(-1), so the caught-signal
        mask in /proc tells us exactly when a real port would interrupt."""
        try:
            with open(f"/proc/{self.pid}/status") as f:
                for line in f:
                    if line.startswith("SigCgt:"):
                        return bool(int(line.split()[1], 16) & (1 << (signal.SIGINT - 1)))
        except OSError:
            pass
        return False

    def interrupt(self):
        try:
            os.kill(self.pid, signal.SIGINT)
        except ProcessLookupError:
            pass

    def cpu_state(self):
        """The kernel's scheduler state letter (R running, S sleeping...), or None."""
        try:
            with open(f"/proc/{self.pid}/stat") as f:
                return f.read().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            return None

    def cpu_seconds(self):
        """CPU time the VM process has used (user + system), 0.0 once it is gone."""
        try:
            with open(f"/proc/{self.pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / _CLK_TCK
        except (OSError, IndexError, ValueError):
            return 0.0

    def unsent_output(self):
        """Bytes the VM wrote to its UART that the bridge has not taken yet."""
        try:
            buf = fcntl.ioctl(self.master, termios.FIONREAD, b"\0\0\0\0")
        except OSError:
            return 0
        return struct.unpack("i", buf)[0]

    def kill(self):
        if self.alive:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def close(self):
        """Release fds once the process is gone (after on_exit)."""
        for fd in (self.master, self.slave):
            try:
                os.close(fd)
            except OSError:
                pass
        self.side.close()
