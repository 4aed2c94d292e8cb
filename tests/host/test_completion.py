"""`edgekit completion bash`, loaded into a real bash and asked what it completes."""
import shutil
import subprocess

import pytest

from edgekit.cli import main


def complete(script, line):
    words = line.split(" ")
    array = " ".join(f"'{w}'" for w in words)
    probe = (f"{script}\nCOMP_WORDS=({array}); COMP_CWORD={len(words) - 1}; _edgekit; "
             'printf "%s\\n" "${COMPREPLY[@]}"')
    out = subprocess.run(["bash", "-c", probe], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    return out.stdout.split()


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_bash_completes_commands_actions_and_options(capsys):
    assert main(["completion", "bash"]) == 0
    script = capsys.readouterr().out
    assert complete(script, "edgekit dev") == ["devices"]
    assert "provision" in complete(script, "edgekit pro")
    assert set(complete(script, "edgekit devices ")) >= {"list", "show", "set", "export"}
    assert complete(script, "edgekit devices li") == ["list"]
    assert "--json" in complete(script, "edgekit devices list --")
    assert "--minutes" in complete(script, "edgekit maintenance /dev/ttyUSB0 --mi")
    # options do not show up where a command name is expected
    assert not [w for w in complete(script, "edgekit keys ") if w.startswith("-")]
