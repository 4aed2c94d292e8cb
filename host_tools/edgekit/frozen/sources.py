"""What a frozen image carries: the same files an OTA bundle carries (edgekit.ota.bundle
default_sources: the library, the protocol catalog, the kind's app and schema), a generated
`build_info` naming the image's kinds, and the board's HAL. boot.py and main.py stay on the
filesystem, as `edgekit flash` writes them: a port runs them as source."""
import hashlib
from pathlib import Path

from edgekit.ota import bundle as bundle_mod
from edgekit.paths import BOARDS_DIR, FIRMWARE_DIR, FIRMWARE_LIB, PROTOCOL_DIR

# The unix VM stands in for every kind at once: frozen modules cost no heap until imported,
# so one build serves all kinds' tests (and CI builds it once).
ALL = "all"
KINDS = ("water_meter", "water_atm", "smart_bin", "env_sensor")
# The HAL each target freezes; `hal` is an alias module (`from hal_x import *`), the one
# line a board image adds so the firmware's `import hal` finds its port's HAL. The unix VM
# also freezes the emulator's stand-ins for the port's built-in `machine` and `vfs`, which
# cost no heap on a board.
HALS = {"unix": ("hal_emu", "hal_common", "emu_machine", "emu_vfs"),
        "esp32": ("hal_esp32", "hal_common", "hal_machine"),
        "rp2": ("hal_rp2040", "hal_common", "hal_machine")}


def kinds_of(kind):
    if kind == ALL:
        return list(KINDS)
    from edgekit.appschema import check_kind
    check_kind(kind)
    return [kind]


def firmware_sources(kind) -> list:
    """Library, catalog and the apps (with schemas) of `kind` (or every kind for ALL)."""
    apps = FIRMWARE_DIR / "apps"
    srcs = sorted(FIRMWARE_LIB.glob("*.py")) + [PROTOCOL_DIR / "catalog.py"]
    for k in kinds_of(kind):
        srcs += [p for p in (apps / f"{k}.py", apps / f"{k}_schema.py") if p.exists()]
    return srcs


def hal_sources(target) -> list:
    return [BOARDS_DIR / f"{name}.py" for name in HALS[target]]


def build_info_source(board, kind, version) -> str:
    # The same module `edgekit ota build` generates: runtime.available_kinds() reads KINDS.
    # SEQ 0: below every OTA update's sequence, so an update is never refused as a rollback.
    info = bundle_mod.build_info_source(board, kind, version, 0)
    return info.replace(f"KINDS = [{kind!r}]", f"KINDS = {kinds_of(kind)!r}")


def digest(paths, extra=b"") -> str:
    """Digest of the sources an image freezes: names the build, so a stale one is seen."""
    h = hashlib.sha256(extra)
    for p in sorted(Path(p) for p in paths):
        h.update(p.name.encode() + b"\0" + p.read_bytes() + b"\0")
    return h.hexdigest()[:16]
