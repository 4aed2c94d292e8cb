"""OTA sequence numbers on the host (SPEC 9.1): 1..2^63-2 is all `ota build` and `ota sign`
accept (2^63-1 is terminal: no update could follow it), and `ota build` warns when --seq jumps
more than --max-seq-step above the highest sequence built for that board and kind, or is not
above it."""
import pytest

from edgekit import catalog as C
from edgekit.ota import bundle as bundle_mod
from edgekit.ota import manifest as man
from edgekit.protocol import cbor
from edgekit.testing.fleet import TEST_PASSPHRASE, keystore_fixture

from test_fuzz_files import run, tree

keys = keystore_fixture()
TERMINAL = (1 << 63) - 1


def build(home, seq=None, *extra, out="b.ekota"):
    argv = ["ota", "build", "--board", "esp32", "--kind", "water_meter", "--version", "1.0.0",
            "--app-only", "-o", home / out, *extra]
    if seq is not None:
        argv += ["--seq", seq]
    return run(argv, env={"EDGEKIT_HOME": str(home)})


@pytest.mark.parametrize("seq", [0, TERMINAL, TERMINAL + 1, (1 << 64) - 1])
def test_build_refuses_sequences_outside_the_usable_range(tmp_path, seq):
    rc, _, err = build(tmp_path, seq)
    assert rc == 2 and f"sequence number {seq} is outside 1..{man.SEQ_MAX}" in err, err
    assert "2^63-1 is terminal" in err and len(err.strip().splitlines()) == 1
    assert tree(tmp_path) == {}, "a refused build wrote something"


def test_build_takes_the_largest_usable_sequence(tmp_path):
    rc, out, err = build(tmp_path, man.SEQ_MAX)
    assert rc == 0, err
    assert f"(seq {man.SEQ_MAX})" in out


def test_sign_refuses_a_bundle_carrying_the_terminal_sequence(tmp_path, keys):
    good = bundle_mod.build("esp32", "water_meter", "1.0.0", seq=5, app_only=True)
    m = dict(good.manifest)
    m[C.K_OTA_SEQ] = TERMINAL       # as an older edgekit (which allowed it) would have built
    path = tmp_path / "terminal.ekota"
    path.write_bytes(cbor.dumps({"format": bundle_mod.FORMAT, "manifest": cbor.dumps(m),
                                 "payloads": good.payloads}))
    before = tree(tmp_path)
    rc, _, err = run(["ota", "sign", path, "--keys", keys.path],
                     env={"EDGEKIT_KEY_PASSPHRASE": TEST_PASSPHRASE})
    assert rc == 2 and "terminal.ekota" in err and f"sequence number {TERMINAL}" in err, err
    assert tree(tmp_path) == before


def test_build_warns_about_a_sequence_jump_or_a_step_back(tmp_path):
    assert build(tmp_path, 10)[0] == 0
    rc, _, err = build(tmp_path, 11)
    assert rc == 0 and err == ""                        # the next one: nothing to say
    rc, _, err = build(tmp_path, 5000, out="typo.ekota")
    assert rc == 0 and err.startswith("edgekit: warning: sequence 5000 jumps 4989 above 11"), err
    assert "--max-seq-step 1000" in err and "rebuild with --seq 12" in err
    rc, _, err = build(tmp_path, 4000)
    assert rc == 0 and "sequence 4000 is not above 5000" in err and "rollback" in err, err
    rc, _, err = build(tmp_path, 5400, "--max-seq-step", "500")
    assert rc == 0 and err == ""                        # 400 above the highest: within 500
    rc, _, err = build(tmp_path, 9000, "--max-seq-step", "500")
    assert rc == 0 and "jumps 3600 above 5400" in err
    rc, _, err = build(tmp_path, 10 ** 12, "--max-seq-step", "0")
    assert rc == 0 and err == ""                        # 0: no step warning
    # another board/kind has its own history; the default (the build time) follows the
    # clock, so only a step back is warned about
    rc, _, err = run(["ota", "build", "--board", "esp32", "--kind", "env_sensor", "--version",
                      "1.0.0", "--app-only", "-o", tmp_path / "env.ekota", "--seq", "7"],
                     env={"EDGEKIT_HOME": str(tmp_path)})
    assert rc == 0 and err == ""
    rc, _, err = build(tmp_path)
    assert rc == 0 and "is not above 1000000000000" in err


def test_max_seq_step_must_not_be_negative(tmp_path):
    rc, _, err = build(tmp_path, 5, "--max-seq-step", "-1")
    assert rc == 2 and "--max-seq-step -1" in err and tree(tmp_path) == {}
