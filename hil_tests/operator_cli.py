"""What the CLI-driven HIL tests share (the `fleet_home` fixture is in conftest.py): the
test fleet's passphrase and a runner that returns (exit code, stdout, stderr) of one
`edgekit` command run in-process."""
from edgekit.cli import main as edgekit

PASS = "operator test passphrase"


def run(capsys, *argv):
    code = edgekit(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err
