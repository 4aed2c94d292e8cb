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


def _declared(first, last):
    """Names assigned in protocol/catalog.py from `first` to `last`, in file order."""
    names = [k for k in vars(_mod) if not k.startswith("__")]
    return names[names.index(first):names.index(last) + 1]


# Names for people (monitor output, logs); the device never needs them, so they live here.
TYPE_NAMES = {getattr(_mod, n): n for n in _declared("HELLO", "DOC_UPDATE_RESULT")
              if type(getattr(_mod, n)) is int}
LABEL_NAMES = {v: k[2:].lower() for k, v in vars(_mod).items() if k.startswith("K_")}
SENML_NAMES = {v: k[6:].lower() for k, v in vars(_mod).items() if k.startswith("SENML_")}


def type_name(msg_type: int) -> str:
    return TYPE_NAMES.get(msg_type, f"0x{msg_type:02x}")
