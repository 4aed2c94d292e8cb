"""The firmware source tree: the one place that lists the device kinds and the folders a
device runs.

    firmware/boot.py, main.py      the board image's entry points (never in a bundle)
    firmware/core/                 runtime, link agent, scheduler, services, provisioning
    firmware/codec/                CBOR, envelopes, link framing, SenML
    firmware/crypto/               Ed25519, SHA-512, COSE, trust anchors
    firmware/storage/              crash-safe records, journals, the flash I/O seam
    firmware/ota/                  OTA agent, slots, boot-time slot choice
    firmware/net/                  the network transport: MQTT client, link, its config
    firmware/kinds/<kind>/         the kind's app (<kind>.py), its settings schema
                                   (<kind>_schema.py) and the modules only it imports

A device imports modules by bare name from one flat /lib: every build (OTA bundle, flash
image, emulator ROM, test VM path) flattens core + the kind's folder, so a module's name must
be unique across the tree (`sources` refuses a clash). Adding a kind: docs/architecture.md.
"""
from pathlib import Path

from edgekit.errors import EdgekitError
from edgekit.paths import FIRMWARE_DIR

# Every device runs these folders, in this order.
CORE_DIRS = ("core", "codec", "crypto", "storage", "ota", "net")
# The device kinds, each with its folder firmware/kinds/<kind>/ and its device-id prefix.
# firmware/core/runtime.py KNOWN_KINDS repeats the names for the development tree (a built
# image names its kind in build_info); tests/host/test_firmware_tree.py keeps them equal.
ID_PREFIX = {"water_meter": "wm", "water_atm": "atm", "smart_bin": "bin", "env_sensor": "env"}
KINDS = tuple(ID_PREFIX)
KINDS_DIR = FIRMWARE_DIR / "kinds"
ENTRY_POINTS = ("boot.py", "main.py")


class TreeError(EdgekitError):
    """The firmware tree does not have the shape the build needs."""


def kind_dir(kind) -> Path:
    if kind not in KINDS:
        raise TreeError(f"unknown device kind {kind!r}: choose one of {', '.join(KINDS)}")
    return KINDS_DIR / kind


def core_dirs() -> list:
    return [FIRMWARE_DIR / d for d in CORE_DIRS]


def source_dirs(kinds=KINDS) -> list:
    """The folders a device of any of `kinds` runs: the core ones, then each kind's."""
    if isinstance(kinds, str):
        kinds = (kinds,)
    return core_dirs() + [kind_dir(k) for k in kinds]


def sources(kinds=KINDS) -> list:
    """Every .py file a device of `kinds` runs, sorted by module name; a module name found
    in two folders is refused (flattened into one /lib, one copy would shadow the other)."""
    seen = {}
    for d in source_dirs(kinds):
        for p in d.glob("*.py"):
            if p.stem in seen:
                raise TreeError(f"module {p.stem} is in both {seen[p.stem]} and {p}: device "
                                "modules share one flat /lib, rename one of them")
            seen[p.stem] = p
    return [seen[name] for name in sorted(seen)]


def module_path(name) -> Path:
    """The source of device module `name` (core or any kind's)."""
    for d in source_dirs():
        p = d / f"{name}.py"
        if p.exists():
            return p
    raise TreeError(f"no firmware module {name} under {FIRMWARE_DIR} (core folders "
                    f"{', '.join(CORE_DIRS)}, kinds/<kind>)")


def kind_of(path) -> str:
    """The kind whose folder holds `path`, or None for a core module."""
    path = Path(path).resolve()
    for k in KINDS:
        if kind_dir(k).resolve() in path.parents:
            return k
    return None


def app_path(kind) -> Path:
    """The kind's app module (it may not exist yet: the device then runs its minimal app)."""
    return kind_dir(kind) / f"{kind}.py"


def schema_path(kind) -> Path:
    return kind_dir(kind) / f"{kind}_schema.py"


def kinds_with_app() -> list:
    return [k for k in KINDS if app_path(k).exists()]
