"""The firmware tree by device kind (edgekit.firmware_tree): one list of kinds that every other
list agrees with, one folder per kind, and builds that carry a kind's code and nothing of
another kind's -- but everything it imports."""
import ast
import re

import pytest

from edgekit import firmware_tree as ft
from edgekit.emu import worlds
from edgekit.ota import bundle as bundle_mod
from edgekit.paths import BOARDS_DIR, FIRMWARE_DIR
from edgekit.registry import export
from edgekit.testing import mp
from edgekit.testing.mpycache import compile_tree

# What a module may import besides the bundle's own modules: the MicroPython VM's built-in
# modules (docs/FACTS: present on the ports we run), the board image's HAL, and the two
# files every build adds (the protocol catalog, build_info).
BUILT_IN = {"array", "binascii", "deflate", "gc", "hashlib", "json", "math", "micropython",
            "os", "socket", "struct", "sys", "time",
            "errno", "select",  # the ports' own (mqtt.py's non-blocking connect)
            "tls"}     # mbedTLS: the unix VM, ESP32, Pico W (nettls, only for mqtts://)
# umqtt: frozen into the ESP32 / Pico W images (netlink falls back to firmware/net/mqtt.py)
BOARD_IMAGE = {"hal", "umqtt"}
BUILD_ADDS = {"catalog", "build_info"}


def imports_of(path):
    """Every module name `path` imports, at top level or inside a function."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            names.add(node.module.split(".")[0])
    return names


def test_every_list_of_kinds_is_the_tree_s():
    runtime = ft.module_path("runtime").read_text()
    known = ast.literal_eval(re.search(r"^KNOWN_KINDS = (\(.*\))$", runtime, re.M).group(1))
    assert known == ft.KINDS
    assert sorted(p.name for p in ft.KINDS_DIR.iterdir() if p.is_dir()) == sorted(ft.KINDS)
    assert set(export.KIND_DATA) == set(ft.KINDS)      # every kind is registrable
    assert worlds.known_kinds() == sorted(ft.KINDS)     # and has an emulated world
    assert all(ft.app_path(k).exists() and ft.schema_path(k).exists() for k in ft.KINDS)


def test_the_tree_has_only_the_named_folders():
    folders = sorted(p.name for p in FIRMWARE_DIR.iterdir() if p.is_dir()
                     and p.name != "__pycache__")
    assert folders == sorted(ft.CORE_DIRS + ("kinds",))
    assert sorted(p.name for p in FIRMWARE_DIR.glob("*.py")) == sorted(ft.ENTRY_POINTS)
    assert len(ft.sources()) == len({p.stem for p in ft.sources()})


def test_a_module_name_in_two_folders_is_refused(tmp_path, monkeypatch):
    for d in ("core", "kinds/water_meter"):
        (tmp_path / d).mkdir(parents=True)
        (tmp_path / d / "clash.py").write_text("")
    monkeypatch.setattr(ft, "FIRMWARE_DIR", tmp_path)
    monkeypatch.setattr(ft, "KINDS_DIR", tmp_path / "kinds")
    monkeypatch.setattr(ft, "CORE_DIRS", ("core",))
    with pytest.raises(ft.TreeError, match="module clash is in both"):
        ft.sources("water_meter")


@pytest.mark.parametrize("kind", ft.KINDS)
def test_a_bundle_carries_its_kind_and_nothing_of_another(kind):
    names = {p.stem for p in bundle_mod.default_sources(kind)}
    for other in ft.KINDS:
        theirs = {p.stem for p in ft.kind_dir(other).glob("*.py")}
        if other == kind:
            assert theirs <= names
        else:
            assert not theirs & names, f"{kind} bundle ships {other} code"
    core = {p.stem for d in ft.core_dirs() for p in d.glob("*.py")}
    assert names == core | {p.stem for p in ft.kind_dir(kind).glob("*.py")} | {"catalog"}


@pytest.mark.parametrize("kind", ft.KINDS)
def test_every_module_a_kind_imports_is_in_its_bundle(kind):
    sources = bundle_mod.default_sources(kind)
    names = {p.stem for p in sources}
    for p in sources:
        missing = imports_of(p) - names - BUILT_IN - BOARD_IMAGE - BUILD_ADDS
        assert not missing, f"{p.name} imports {sorted(missing)}, not in the {kind} bundle"


def test_each_kind_imports_from_its_flattened_bundle_alone(tmp_path):
    """In the real VM, with only the kind's bundle (and the board image's HAL) on the path,
    every module of the bundle imports: the runtime, provisioning, OTA and the app."""
    script = "import sys\nsys.path[:] = [%r]\n"
    for kind in ft.KINDS:
        flat = compile_tree(bundle_mod.default_sources(kind)
                            + [BOARDS_DIR / "hal_common.py"],
                            tmp_path / kind)
        mods = sorted(p.stem for p in bundle_mod.default_sources(kind))
        out = mp.run(script % str(flat) + f"for m in {mods!r}:\n    __import__(m)\n"
                     "print('ok', len(sys.modules))\n", heap="4M")
        assert out.split()[-2] == "ok", out


def test_no_test_double_ships_in_a_device_image():
    """Test-only code lives with the tests (tests/firmware/support/): every module under
    firmware/ goes into some device's image."""
    for p in ft.sources():
        text = p.read_text()
        for name in ("BrownoutFlash", "battery_life_days", "Test double"):
            assert name not in text, f"{p} holds test-only {name}"
