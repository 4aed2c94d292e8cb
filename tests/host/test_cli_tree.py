"""Every `edgekit` command, found by walking the parser rather than listed by hand (so a new
command cannot be forgotten): `--help` works and says what the command is for, and `--json`
is accepted (listing and reading commands must have it; the others have it for scripts)."""
import argparse

import pytest

from edgekit.cli import build_parser


def leaves(parser, path=()):
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        yield path, parser
        return
    for name, sub in subs[0].choices.items():
        yield from leaves(sub, path + (name,))


COMMANDS = list(leaves(build_parser()))


def test_the_tree_has_every_tool():
    tops = {path[0] for path, _ in COMMANDS}
    assert {"keys", "devices", "provision", "emu", "ota", "flash", "monitor", "command",
            "voucher"} <= tops
    assert len(COMMANDS) >= 38


@pytest.mark.parametrize("path", [p for p, _ in COMMANDS], ids=" ".join)
def test_help_and_json(path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(list(path) + ["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: edgekit " + " ".join(path))
    parser = dict(COMMANDS)[path]
    assert (parser.description or "").strip() or any(
        a.help for a in parser._actions if a.option_strings == []), f"{path}: no description"
    options = {o for a in parser._actions for o in a.option_strings}
    assert "--json" in options, f"edgekit {' '.join(path)} has no --json"


@pytest.mark.parametrize("argv", [
    ["provision", "socket://127.0.0.1:9", "--kind", "water_meter", "--site", "x"],
    ["command", "socket://127.0.0.1:9", "read"],
    ["monitor", "socket://127.0.0.1:9"],
    ["ota", "push", "socket://127.0.0.1:9", "missing.ekota"],
], ids=lambda a: " ".join(a[:2]))
def test_no_key_directory_is_one_message_before_any_passphrase_or_port(argv, tmp_path,
                                                                       monkeypatch, capsys):
    from edgekit.cli import main
    monkeypatch.setenv("EDGEKIT_HOME", str(tmp_path))
    monkeypatch.delenv("EDGEKIT_KEY_PASSPHRASE", raising=False)

    def no_prompt(*_):
        raise AssertionError("asked for a passphrase before finding the keys")
    monkeypatch.setattr("getpass.getpass", no_prompt)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert f"no keys in {tmp_path / 'keys'}: run `edgekit keys init` first" in err, err
