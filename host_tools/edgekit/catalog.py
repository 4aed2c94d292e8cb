"""The protocol catalogue (protocol/catalog.py) as a host module: one file, two runtimes."""
import importlib.util

from edgekit.paths import PROTOCOL_DIR

_spec = importlib.util.spec_from_file_location("edgekit_protocol_catalog",
                                               PROTOCOL_DIR / "catalog.py")
_mod = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_mod)
globals().update({k: v for k, v in vars(_mod).items() if not k.startswith("__")})


def error_name(code: int) -> str:
    return _mod.ERROR_NAMES.get(code, f"error_{code}")
