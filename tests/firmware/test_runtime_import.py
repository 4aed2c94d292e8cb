"""runtime finds an app by importing it (frozen modules are invisible to os.stat), yet a
module that is there but cannot import what it needs is a broken build, not a missing app."""
from edgekit.testing import mp

CODE = r'''
import runtime
print(runtime._import_if_present("absent_app") is None)
print(runtime._import_if_present("fine_app").X)
try:
    runtime._import_if_present("broken_app")
    print("swallowed")
except ImportError as exc:
    print("raised", exc)
'''


def test_absent_app_is_none_present_app_imports_and_a_broken_one_raises(tmp_path):
    (tmp_path / "fine_app.py").write_text("X = 42\n")
    (tmp_path / "broken_app.py").write_text("import no_such_dependency\n")
    out = mp.run(CODE, extra_paths=[tmp_path], heap="1M").split("\n")     # runtime as source
    assert out[0] == "True"
    assert out[1] == "42"
    assert out[2].startswith("raised") and "no_such_dependency" in out[2]
