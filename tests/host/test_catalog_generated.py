"""The host's written-out catalogue (edgekit/protocol/catalog.py) is protocol/catalog.py, current,
and the generator refuses a catalogue that is not plain assignments."""
import runpy

import pytest

from edgekit import catalog as C
from edgekit.paths import PROTOCOL_DIR
from edgekit.protocol import catalog_gen


def test_the_generated_module_is_current():
    assert catalog_gen.TARGET.read_text() == catalog_gen.render(
        (PROTOCOL_DIR / "catalog.py").read_text()), "stale: run `make catalog`"
    assert catalog_gen.main(["--check"]) == 0


def test_the_host_namespace_holds_every_number_of_the_catalogue():
    device = {k: v for k, v in runpy.run_path(str(PROTOCOL_DIR / "catalog.py")).items()
              if not k.startswith("__")}
    assert len(device) > 150
    host = {k: getattr(C, k) for k in device}
    assert host == device
    # the names for people come from the same numbers
    assert C.type_name(C.OTA_OFFER) == "OTA_OFFER" and C.error_name(C.E_BUSY) == "busy"
    assert C.LABEL_NAMES[C.K_DEVICE_ID] == "device_id"


def test_check_reports_a_stale_file(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(catalog_gen, "TARGET", tmp_path / "catalog.py")
    (tmp_path / "catalog.py").write_text("OLD = 1\n")
    assert catalog_gen.main(["--check"]) == 1
    assert "make catalog" in capsys.readouterr().err
    assert catalog_gen.main([]) == 0 and catalog_gen.main(["--check"]) == 0


@pytest.mark.parametrize("source", [
    "import os\nA = 1\n",
    "globals().update({'A': 1})\n",
    "def f():\n    return 1\n",
    "A, B = 1, 2\n",
])
def test_logic_in_the_catalogue_is_refused(source):
    with pytest.raises(catalog_gen.CatalogError, match="plain `NAME = value`"):
        catalog_gen.render(source)
