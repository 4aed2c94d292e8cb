"""Write protocol/catalog.py out as the host module edgekit/protocol/catalog.py (`make catalog`).

protocol/catalog.py stays the one catalogue: the device build copies it to /lib/catalog.py and
MicroPython imports it as it is. The host used to load it by path at run time, which editors
and linters cannot follow and which broke in an installed wheel; the generated module gives
every `C.NAME` a definition a tool can resolve. tests/host/test_catalog_generated.py fails
when the two differ, so an edit to the catalogue cannot ship without regenerating.
"""
import ast
import sys
from pathlib import Path

from edgekit.paths import PROTOCOL_DIR

TARGET = Path(__file__).with_name("catalog.py")
HEADER = ("# GENERATED from protocol/catalog.py by `python -m edgekit.protocol.catalog_gen`\n"
          "# (`make catalog`). Do not edit: edit protocol/catalog.py and regenerate.\n\n")


class CatalogError(ValueError):
    pass


def check_plain(source: str, name="protocol/catalog.py") -> None:
    """Refuse anything but `NAME = <literal or expression of earlier names>`: the file must
    mean the same on both runtimes and stay readable as a list of numbers."""
    for node in ast.parse(source, name).body:
        if isinstance(node, ast.Assign) and all(isinstance(t, ast.Name) for t in node.targets):
            continue
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            continue                        # a docstring or a bare string
        raise CatalogError(f"{name}:{node.lineno}: only plain `NAME = value` assignments "
                           f"belong in the catalogue (found {type(node).__name__}); move logic "
                           "to the host (edgekit/catalog.py) or the firmware")


def render(source: str) -> str:
    check_plain(source)
    return HEADER + source


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    wanted = render((PROTOCOL_DIR / "catalog.py").read_text())
    current = TARGET.read_text() if TARGET.exists() else ""
    if "--check" in argv:
        if current != wanted:
            print(f"{TARGET} is stale: run `make catalog`", file=sys.stderr)
            return 1
        return 0
    if current != wanted:
        TARGET.write_text(wanted)
        print(f"wrote {TARGET}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
