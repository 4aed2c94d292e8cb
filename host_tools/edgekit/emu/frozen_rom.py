"""ROM choices: which MicroPython VM an emulated board runs, and with what heap.

    mpy       (default) the 64-bit `micropython` from PyPI; the firmware is loaded as .mpy
              into its heap, so the heap is the board's figure plus a measured allowance
              (edgekit.emu.rom). Quick, always available, approximate.
    frozen32  the board-accurate VM: the unix port built 32-bit with the firmware frozen
              (edgekit.frozen.unixvm, `make frozen-vm`). Objects are the size an ESP32's or
              RP2040's are and the firmware's bytecode stays out of the heap, as on a board,
              so the VM gets the board's heap exactly: no allowance.

The launcher (boards/emu_launch.py) sees which one it runs in by where `hal_emu` comes from.
"""
from edgekit.board_defs import parse_size

DEFAULT = "mpy"
FROZEN32 = "frozen32"
ROMS = (DEFAULT, FROZEN32)


class RomError(ValueError):
    """The ROM asked for is unknown or not available (the message says what to do)."""


def check(rom):
    """Refuse an unknown ROM, or a frozen VM that is not built or is stale."""
    if rom not in ROMS:
        raise RomError(f"ROM {rom!r}: use one of {', '.join(ROMS)}")
    if rom == FROZEN32:
        from edgekit.frozen import unixvm
        ok, why = unixvm.status()
        if not ok:
            raise RomError(f"ROM {FROZEN32}: {why}")


def vm_command(rom):
    """The command that runs the VM for `rom`, or None for the default (emu.vm decides)."""
    if rom == FROZEN32:
        from edgekit.frozen import unixvm
        return [str(unixvm.binary())]
    return None


def exact_heap(board_def, heap_scale):
    """The frozen VM's heap: the board's figure (scaled for headroom tests), nothing added."""
    return str(int(parse_size(board_def["heap"]) * heap_scale))
