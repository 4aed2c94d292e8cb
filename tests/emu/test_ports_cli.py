"""`edgekit ports`: what answers on each port, through the ports themselves, without keys:
a provisioned device (its id), an edgekit board in factory state, plain MicroPython (its
banner) and a port where nothing answers."""
import json
import socket
import threading

from edgekit.cli import main
from edgekit.hil.devices import HilFleet, provision
from edgekit.hil.targets import BoardSpec, EmulatedTarget


def test_ports_tells_what_answers(emu, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("EDGEKIT_HOME", str(tmp_path / "empty-home"))    # no keys at all
    bare = emu.start("esp32", bare=True)
    factory = emu.start("esp32", kind="water_meter")
    target = EmulatedTarget(emu, BoardSpec("emu:esp32:water_meter"), time_mode="real")
    dev = provision(target, HilFleet(tmp_path / "fleet"), "water_meter")
    dev.close()
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(1)
    held = []
    threading.Thread(target=lambda: held.append(silent.accept()), daemon=True).start()
    quiet = f"socket://127.0.0.1:{silent.getsockname()[1]}"
    try:
        ports = [target.url, factory.url, bare.url, quiet]
        assert main(["ports", *ports, "--json", "--timeout", "1.5"]) == 0
        rows = {r["port"]: r for r in json.loads(capsys.readouterr().out)["ports"]}
        assert rows[target.url]["answers"] == "edgekit"
        assert rows[target.url]["state"] == "provisioned"
        assert rows[target.url]["device_id"] == dev.id
        assert rows[factory.url]["answers"] == "edgekit"
        assert rows[factory.url]["state"] == "factory"
        assert rows[bare.url]["answers"] == "micropython"
        assert rows[bare.url]["banner"].startswith("MicroPython")
        assert rows[quiet]["answers"] == "nothing"
        # the readable listing names each
        assert main(["ports", *ports, "--timeout", "1.5"]) == 0
        out = capsys.readouterr().out
        assert dev.id in out and "factory state" in out and "plain MicroPython" in out
        assert "nothing answered" in out
        # the provisioned device obeyed no REPL byte: it still answers as itself
        assert main(["ports", target.url, "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["ports"][0]["device_id"] == dev.id
    finally:
        target.close()
        bare.stop()
        factory.stop()
        silent.close()
