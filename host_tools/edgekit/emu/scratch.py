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


def scratch_dir(prefix):
    """A new throwaway directory, in RAM when the host has one (see the module's note)."""
    return tempfile.mkdtemp(prefix=prefix, dir=ram_dir())
