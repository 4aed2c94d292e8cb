"""Where a throwaway emulator keeps its boards' flash: in RAM when the host has a tmpfs.

An emulated board's flash is a host directory, and the firmware's crash-safe writes are
write-new + rename. On ext4 a rename over an existing file flushes the new file's data to
disk first (auto_da_alloc): about 300 us a write + rename on this project's CI disk against
8 us on tmpfs (bench/bench_emu.py prints both). A provisioned water meter checkpoints every
15 minutes and closes every hour with such writes, so on disk its simulated years were paced
by the host's disk, not by the firmware. Durability of the host's copy buys nothing for a
throwaway board (power cuts are the emulator's, cut at flash operations), so a throwaway
state directory goes to RAM; a directory the user names stays where they put it.
"""
import os
import tempfile

# Linux's RAM-backed mount for POSIX shared memory: present on every distribution we run on,
# writable by every user. Elsewhere (macOS) the system temp dir is used.
_RAM_DIRS = ("/dev/shm",)


def ram_dir():
    """A writable RAM-backed directory, or None."""
    for d in _RAM_DIRS:
        if os.path.isdir(d) and os.access(d, os.W_OK | os.X_OK):
            return d
    return None


_OWNER = "owner.pid"


def scratch_dir(prefix):
    """A new throwaway directory, in RAM when the host has one (see the module's note),
    marked with our pid. Directories of `prefix` whose process is gone (killed before it
    could remove them) are removed first: in RAM they would hold memory until a reboot."""
    ram = ram_dir()
    if ram is not None:
        sweep(ram, prefix)
    path = tempfile.mkdtemp(prefix=prefix, dir=ram)
    with open(os.path.join(path, _OWNER), "w") as f:
        f.write(str(os.getpid()))
    return path


def sweep(parent, prefix):
    """Remove `parent`'s `prefix`* directories whose owner process no longer runs."""
    import shutil
    for name in os.listdir(parent):
        path = os.path.join(parent, name)
        if not name.startswith(prefix) or not os.path.isdir(path):
            continue
        try:
            with open(os.path.join(path, _OWNER)) as f:
                pid = int(f.read().strip())
        except (OSError, ValueError):
            continue            # not ours to judge (no owner mark): left alone
        if not process_alive(pid):
            shutil.rmtree(path, ignore_errors=True)


def process_alive(pid):
    """Does process `pid` still run (signal 0: asks, sends nothing)?"""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True             # another user's process: alive
    return True
