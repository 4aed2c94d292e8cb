"""pytest plugin (entry point `pytest11`): `--board` selects what the HIL suite runs against.

    --board emu:esp32[:KIND]     an emulated board (default when no --board is given)
    --board serial:/dev/ttyUSB0  a real board on a serial port
    --board socket://HOST:PORT   anything pyserial reaches by URL
Several --board options give multi-device tests their boards, in order.
"""
DEFAULT_BOARD = "emu:esp32"


def pytest_addoption(parser):
    group = parser.getgroup("edgekit", "edgekit hardware-in-the-loop")
    group.addoption("--board", action="append", default=[], metavar="SPEC",
                    help="board under test: emu:BOARD[:KIND], serial:PORT or socket://HOST:PORT "
                         "(repeat for multi-device tests; default emu:esp32)")
    group.addoption("--rig", default=None, metavar="FILE",
                    help="bench rig description (TOML) mapping world stimuli to rig channels")


def board_specs(config):
    return config.getoption("--board") or [DEFAULT_BOARD]
