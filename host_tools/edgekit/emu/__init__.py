"""The board emulator: real firmware in the real MicroPython unix VM, on a paced UART.

Python API (tests): `Emulator`, `BoardHandle` (edgekit.emu.api). CLI: `edgekit emu`
(edgekit.emu.cli, talking to a detached supervisor daemon). Design: docs/emulator.md.
"""
from edgekit.emu.api import BoardHandle, Emulator
from edgekit.emu.boards import BoardError, known_boards, load_board
from edgekit.emu.supervisor import EmuError

__all__ = ["Emulator", "BoardHandle", "EmuError", "BoardError", "known_boards", "load_board"]
