"""The board emulator: real firmware in the real MicroPython unix VM, on a paced UART.

Python API (tests): `Emulator`, `BoardHandle` (edgekit.emu.api). CLI: `edgekit emu`
(edgekit.emu.cli, talking to a detached supervisor daemon). Design: docs/emulator.md.

    supervisor.py      hosts many boards on one asyncio loop (in-process, or daemon.py)
    emulated_board.py  one emulated board: VM runs, clock, world, UART, faults, resets
    vm.py, rom.py      one run of the MicroPython VM; the firmware as its ROM
    uart.py, wire.py   the board's UART (TCP + pty, paced to the baud rate); noise on it
    hal_ops.py         the HAL side channel's operations (boards/hal_emu.py's other end)
    clock.py, world.py, worlds/   simulated time; the world around a board, per kind
    port_names.py      `emu:ID` port names -> the running board's socket:// URL
Board definitions (boards/<name>.json) are read by edgekit.board_defs, shared with flashing.
"""
from edgekit.emu.api import BoardHandle, Emulator
from edgekit.board_defs import BoardError, known_boards, load_board
from edgekit.emu.supervisor import EmuError

__all__ = ["Emulator", "BoardHandle", "EmuError", "BoardError", "known_boards", "load_board"]
