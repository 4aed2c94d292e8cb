"""`emu:ID` port names: ask the running emulator daemon for that board's socket:// URL."""
from edgekit.errors import LinkError


def url_for(board_id: str) -> str:
    from edgekit.emu.control import Control
    ctl = Control()
    infos = ctl.request("list") if ctl.running() else []
    for info in infos:
        if info.get("id") == board_id:
            return info["url"]
    known = ", ".join(i.get("id", "?") for i in infos) or "none running"
    raise LinkError(f"no emulated board {board_id!r} (boards: {known}); start one with "
                    f"`edgekit emu start --board esp32`")
