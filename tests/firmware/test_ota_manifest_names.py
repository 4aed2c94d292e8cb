"""The OTA manifest's file-name check on the device (firmware/ota/ota_manifest.py, SPEC
9.1), in the real MicroPython VM: bad names are refused, good ones accepted, and checking a name creates
no qstr. Iterating or indexing a str interns each character as a qstr; when the qstr pool is
full that is a new 1.3 KB block, which a fragmented board heap could not give in the middle
of an OTA offer (the device answered busy: out of memory to a valid update)."""
import json

from edgekit.testing import mp

CODE = r'''
import json, micropython
import catalog as C
import ota_manifest
from envelope import ProtoError


def qstrs():
    # Prints "qstr pool: n_pool=.., n_qstr=N, ..." to the VM's stdout; the host reads it.
    micropython.qstr_info()


def manifest(names):
    files = [{C.K_NAME: n, C.K_SIZE: 3, C.K_DIGEST: bytes(32)} for n in names]
    return {C.K_OTA_SEQ: 5, C.K_VERSION: "1.2.3", C.K_BOARD: "esp32", C.K_KIND: "water_meter",
            C.K_RUNTIME: "1.29.0", C.K_POLICY: C.OTA_POLICY_TEST_CONFIRM, C.K_DEADLINE: 30,
            C.K_FILES: files}


def check(names):
    try:
        return [f[0] for f in ota_manifest.manifest_files(manifest(names))]
    except ProtoError as e:
        return "refused: " + str(e)


out = {}
good = ["Zq7-x_w.mpy", "a", "x" * 32]
out["good"] = check(sorted(good))
qstrs()
check(["QvJ8k~", "Kx%Wj", "Yu3_Zp.mpy"])
qstrs()
bad = {"dot": ".hidden", "dash": "-x", "slash": "lib/x.mpy", "space": "a b",
       "long": "y" * 33, "empty": "", "unicode": "caf\u00e9", "tilde": "a~"}
for k in bad:
    out[k] = check([bad[k]])
print(json.dumps(out))
'''


def test_manifest_file_names_on_the_device():
    out = mp.run(CODE)
    res = json.loads(out.splitlines()[-1])
    counts = [int(line.split("n_qstr=")[1].split(",")[0]) for line in out.splitlines()
              if "n_qstr=" in line]
    assert res["good"] == ["Zq7-x_w.mpy", "a", "x" * 32]
    for key in ("dot", "dash", "slash", "space", "long", "empty", "unicode", "tilde"):
        assert res[key].startswith("refused: manifest: file name"), (key, res[key])
    assert len(counts) == 2 and counts[1] == counts[0], "checking file names interned qstrs (allocations mid-offer)"
