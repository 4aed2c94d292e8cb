"""App config schemas, executed from the firmware's own files (firmware/core/schema.py and
firmware/kinds/<kind>/<kind>_schema.py), so the host validates exactly as the device will."""
import importlib.util
import json
from pathlib import Path

from edgekit.errors import EdgekitError
from edgekit import firmware_tree
from edgekit.firmware_tree import ID_PREFIX, KINDS  # noqa: F401 - this module's API


def _load(path, name):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_validator = _load(firmware_tree.module_path("schema"), "edgekit_fw_schema")


def check_kind(kind):
    if kind not in KINDS:
        raise EdgekitError(f"unknown device kind {kind!r}: choose one of {', '.join(KINDS)}")


def schema_for(kind):
    """The kind's SCHEMA, or {} when this firmware has no app for it yet."""
    check_kind(kind)
    path = firmware_tree.schema_path(kind)
    return _load(path, f"edgekit_fw_{kind}_schema").SCHEMA if path.exists() else {}


def validate(kind, values):
    """The full config the device will hold, or an EdgekitError naming the bad key."""
    try:
        return _validator.validate(schema_for(kind), values)
    except _validator.SchemaError as exc:
        raise EdgekitError(f"config for {kind}: {exc}") from None


def load_config_file(path):
    """A TOML (or JSON) file of settings -> dict. Errors name the file and the line."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise EdgekitError(f"cannot read config file {path}: {exc.strerror}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise EdgekitError(f"{path}: not UTF-8 text (byte {exc.start} is 0x{raw[exc.start]:02x})"
                           ": a config file is TOML or JSON text") from None
    if path.suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise EdgekitError(f"{path}: invalid JSON at line {exc.lineno}: {exc.msg}") from None
        except (ValueError, RecursionError) as exc:   # a 5000-digit number, deep nesting
            raise EdgekitError(f"{path}: invalid JSON: {str(exc).splitlines()[0]}") from None
    else:
        try:
            import tomllib
        except ModuleNotFoundError:  # Python 3.10
            import tomli as tomllib
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise EdgekitError(f"{path}: invalid TOML: {exc}") from None
        except (ValueError, RecursionError) as exc:
            raise EdgekitError(f"{path}: invalid TOML: {str(exc).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise EdgekitError(f"{path}: expected a table of settings")
    check_settings(data, str(path))
    return data


INT_MIN, INT_MAX = -(1 << 63), (1 << 63) - 1
_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")


def check_settings(values, where):
    """Setting names are identifiers (every schema's are) and integers fit 64 bits (TOML's own
    limit; the device's CBOR has no more), so no message carries a line break and no setting
    meets a number a float cannot hold."""
    for key, value in values.items():
        if not isinstance(key, str) or not 1 <= len(key) <= 64 or not _NAME_CHARS >= set(key):
            raise EdgekitError(f"{where}: setting name {key[:64]!r} is not a name of letters, "
                               "digits and _ (see the kind's schema in firmware/kinds/<kind>)")
        if isinstance(value, int) and not isinstance(value, bool) \
                and not INT_MIN <= value <= INT_MAX:
            raise EdgekitError(f"{where}: {key} is a {len(str(abs(value)))}-digit integer, "
                               "outside the 64-bit range")
