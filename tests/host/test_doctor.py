"""`edgekit doctor` says what is ready and what to fix: a healthy home passes; a tampered key
index, a damaged registry and a port where nothing answers are each named."""
import json
import socket

from edgekit.cli import main


def _doctor(capsys, *argv):
    code = main(["doctor", "--json", *argv])
    return code, {c["check"]: c for c in json.loads(capsys.readouterr().out)["checks"]}


def test_a_healthy_home_passes(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("EDGEKIT_HOME", str(tmp_path))
    monkeypatch.setenv("EDGEKIT_KEY_PASSPHRASE", "correct horse battery")
    assert main(["keys", "init"]) == 0
    capsys.readouterr()
    code, checks = _doctor(capsys)
    assert code == 0
    for name in ("micropython", "mpy-cross", "cbor2", "cryptography", "pyserial", "mpremote",
                 "firmware data", "keys"):
        assert checks[name]["status"] == "ok", checks[name]
    assert "runs MicroPython 1." in checks["micropython"]["detail"]
    assert checks["registry"]["status"] == "warn"          # none yet: provision creates it
    # the readable form says so too
    assert main(["doctor"]) == 0
    assert "all checks passed" in capsys.readouterr().out


def test_tampered_keys_a_damaged_registry_and_a_silent_port_are_named(tmp_path, monkeypatch,
                                                                      capsys):
    monkeypatch.setenv("EDGEKIT_HOME", str(tmp_path))
    monkeypatch.setenv("EDGEKIT_KEY_PASSPHRASE", "correct horse battery")
    assert main(["keys", "init"]) == 0
    capsys.readouterr()
    index = tmp_path / "keys" / "keys.json"
    doc = json.loads(index.read_text())
    entry = next(e for e in doc["keys"] if e["role"] == "operator")
    entry["public_key"] = "00" * 31 + "01"                  # the attack of issue 12.2
    index.write_text(json.dumps(doc))
    (tmp_path / "reg.sqlite").write_bytes(b"not a database" * 100)
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(1)
    try:
        code, checks = _doctor(capsys, "--registry", str(tmp_path / "reg.sqlite"), "--port",
                               f"socket://127.0.0.1:{silent.getsockname()[1]}",
                               "--timeout", "0.3")
    finally:
        silent.close()
    assert code == 2
    assert checks["keys"]["status"] == "fail" and "keys.json" in checks["keys"]["detail"]
    assert checks["registry"]["status"] == "fail" and "reg.sqlite" in checks["registry"]["detail"]
    port = [c for name, c in checks.items() if name.startswith("port ")][0]
    assert port["status"] == "warn" and "nothing answered" in port["detail"]
