"""Provisioning validates a config against the app's schema in factory state, and the device
reboots into the app afterwards: so it must load `<kind>_schema` only. Importing the app for
it pulled in the app's whole module tree, and at the water ATM's 70% heap scale that import
failed for want of a 1280-byte block in some runs (hil_tests/test_heap_headroom.py)."""
from edgekit.testing import mp

CODE = r"""
import json, sys
import runtime

class Rt:
    kinds = ["water_atm", "water_meter", "env_sensor", "smart_bin", "no_schema_kind"]
    def app_module(self, kind):
        return runtime.Runtime.app_module(self, kind)

rt = Rt()
out = {}
for kind in ("water_atm", "smart_bin"):
    before = set(sys.modules)
    schema = runtime.Runtime.schema_for(rt, kind)
    out[kind] = {"loaded": sorted(set(sys.modules) - before),
                 "same": schema is __import__(kind + "_schema").SCHEMA}
# a kind this firmware has no app (and no schema module) for: the minimal app's empty schema
out["none"] = runtime.Runtime.schema_for(rt, "no_schema_kind")
print(json.dumps(out))
"""


def test_schema_for_loads_the_schema_module_not_the_app():
    # (a big heap: this VM compiles the runtime from source; the figure is not the point)
    out = mp.run_json(CODE, heap="2M")
    for kind in ("water_atm", "smart_bin"):
        assert out[kind]["same"], out
        assert out[kind]["loaded"] == [kind + "_schema"], out     # not the app, nor its imports
    assert out["none"] == {}
