"""World models by device kind: one module per kind, each exporting WORLD (a World class).

Adding a kind = adding `worlds/<kind>.py`; `make_world` finds it by name.
"""
import importlib
import pkgutil

from edgekit.emu.world import World, WorldError


def known_kinds():
    return sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_"))


def make_world(kind, board):
    """The world for device `kind` (None: a generic bench supply with a battery ADC)."""
    if kind is None:
        return World(board)
    if kind not in known_kinds():
        raise WorldError(f"unknown device kind {kind!r}; known kinds: "
                         f"{', '.join(known_kinds())} (or none for a generic board)")
    return importlib.import_module(f"{__name__}.{kind}").WORLD(board)
