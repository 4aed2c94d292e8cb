"""`emu:ID` port names: ask the running emulator daemon for that board's socket:// URL."""
import sys

from edgekit.errors import LinkError


def info_for(board_id: str) -> dict:
    """The running board's `emu list` entry."""
    from edgekit.emu.control import Control
    ctl = Control()
    infos = ctl.request("list") if ctl.running() else []
    for info in infos:
        if info.get("id") == board_id:
            return info
    known = ", ".join(i.get("id", "?") for i in infos) or "none running"
    raise LinkError(f"no emulated board {board_id!r} (boards: {known}); start one with "
                    f"`edgekit emu start --board esp32`")


def url_for(board_id: str) -> str:
    return info_for(board_id)["url"]


def deadline_warning(port: str, info=None):
    """For a host operation the device must see within a device-time deadline (an OTA
    trial): a warning when `port` is an emulated board in virtual time, which skips its idle
    time between the host's frames (docs/emulator.md, "Time"). None otherwise."""
    if not port.startswith("emu:"):
        return None
    board_id = port[len("emu:"):]
    try:
        info = info if info is not None else info_for(board_id)
    except LinkError:
        return None                         # opening the port says what is wrong
    if info.get("time") != "virtual":
        return None
    return (f"{port} runs in virtual time: between two frames from this host it skips its "
            f"idle time, so the update's trial deadline may pass and the update roll back. "
            f"Run `edgekit emu clock {board_id} --mode real` first")


def warn_deadlines(ports, stream=None):
    """Print deadline_warning() for each of `ports` that needs one (ota push, ota campaign)."""
    for port in ports:
        warning = deadline_warning(port)
        if warning:
            print(f"edgekit: warning: {warning}", file=stream or sys.stderr)
