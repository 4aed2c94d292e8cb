"""Water-ATM vouchers: host minting and checking, the serial book, the CLI, and the kiosk's
own verifier (firmware/kinds/water_atm/voucher.py in micropython) on host-minted vouchers."""
import argparse
import json
import os

import pytest

from edgekit import catalog as C
from edgekit.testing.fleet import TEST_PASSPHRASE, keystore_fixture
from edgekit.protocol import cose
from edgekit.testing import mp
from edgekit.vouchers import SerialBook, VoucherError, check, from_qr_text, mint, to_qr_text
from edgekit.vouchers.cli import register

PASS = TEST_PASSPHRASE
T0 = 1767225600


keys = keystore_fixture()


@pytest.fixture(scope="module")
def op(keys):
    return keys.signer("operator", PASS)


def trusted(signer):
    return {cose.kid_of(signer.public_key_bytes): signer.public_key_bytes}


def test_mint_check_round_trip_through_qr_text(op):
    v = mint(op, "atm-0011aabbccdd", 7, 500, issued=T0, expires=T0 + 86400, card=b"\x04\x01\x02\x03")
    assert len(v) <= C.VOUCHER_MAX
    text = to_qr_text(v)
    assert text.startswith("EKV1:") and len(text) < 320
    f = check(from_qr_text(text), trusted(op), device_id="atm-0011aabbccdd", now=T0 + 5)
    assert (f["serial"], f["amount"], f["card"]) == (7, 500, b"\x04\x01\x02\x03")


@pytest.mark.parametrize("case, code", [
    ("unknown key", C.E_UNKNOWN_KEY), ("altered", C.E_BAD_SIGNATURE),
    ("other kiosk", C.E_WRONG_TARGET), ("expired", C.E_EXPIRED), ("not a voucher", None)])
def test_check_refuses(op, case, code):
    v = mint(op, "atm-1", 3, 100, issued=T0, expires=T0 + 60)
    keys = trusted(op)
    device, now = "atm-1", T0
    if case == "unknown key":
        keys = trusted(cose.SeedSigner(os.urandom(32)))
    elif case == "altered":
        v = bytearray(v)
        v[v.index(bytes([0x18, 0x64]))] ^= 1
        v = bytes(v)
    elif case == "other kiosk":
        device = "atm-2"
    elif case == "expired":
        now = T0 + 61
    else:
        with pytest.raises(VoucherError, match="EKV1"):
            from_qr_text("hello")
        return
    with pytest.raises(VoucherError) as info:
        check(v, keys, device_id=device, now=now)
    assert info.value.code == code


def test_mint_refuses_bad_fields(op):
    for kw, match in [({"serial": 0}, "serial"), ({"amount": 0}, "amount"),
                      ({"amount": 1.5}, "amount"), ({"card": b"\x01"}, "card")]:
        args = dict(device_id="atm-1", serial=1, amount=5)
        args.update(kw)
        with pytest.raises(VoucherError, match=match):
            mint(op, **args)


def test_serial_book_never_repeats(tmp_path):
    a, b = SerialBook(tmp_path), SerialBook(tmp_path)
    got = a.take("atm-1", 3) + b.take("atm-1", 2) + a.take("atm-2", 1)
    assert got == [1, 2, 3, 4, 5, 1]
    (tmp_path / "vouchers" / "atm-1.serial").write_text("garbage")
    with pytest.raises(VoucherError, match="damaged"):
        a.take("atm-1")


def test_cli_mint_then_inspect(keys, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("EDGEKIT_KEY_PASSPHRASE", PASS)
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    out = tmp_path / "v.txt"
    args = parser.parse_args(["voucher", "mint", "--keys", str(keys.path), "--device", "atm-9",
                              "--amount", "250", "--count", "3", "--out", str(out)])
    assert args.func(args) == 0
    lines = out.read_text().split()
    assert len(lines) == 3 and len(set(lines)) == 3
    args = parser.parse_args(["voucher", "inspect", "--keys", str(keys.path), "--device",
                              "atm-9", "--json", lines[2]])
    capsys.readouterr()
    assert args.func(args) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["valid"] and shown["amount"] == 250 and shown["serial"] == 3
    args = parser.parse_args(["voucher", "inspect", "--keys", str(keys.path), "--device",
                              "atm-8", lines[0]])
    assert args.func(args) == 1                     # for another kiosk
    assert "INVALID" in capsys.readouterr().out


def test_kiosk_verifier_agrees_with_the_host(keys, op):
    """The device's voucher.verify on host-minted vouchers: valid, and each forgery with
    the SPEC's code."""
    fleet = keys.signer("fleet", PASS)
    good = mint(op, "atm-k", 11, 300, issued=T0, expires=T0 + 100)
    altered = bytearray(good)
    altered[altered.index(bytes([0x19, 0x01, 0x2c]))] ^= 1
    cases = [("good", good), ("fleet", mint(fleet, "atm-k", 12, 300, issued=T0)),
             ("altered", bytes(altered)), ("other", mint(op, "atm-x", 13, 300, issued=T0)),
             ("expired", good), ("text", to_qr_text(good).encode())]
    code = f"""
import json, envelope, voucher, catalog as C
ring = envelope.Keyring()
ring.add({op.public_key_bytes!r}, C.ROLE_OPERATOR)
ring.add({fleet.public_key_bytes!r}, C.ROLE_FLEET)
out = {{}}
for name, data in {cases!r}:
    try:
        if name == "text":
            data = voucher.from_text(data)
        now = {T0 + 101} if name == "expired" else {T0}
        out[name] = list(voucher.verify(data, ring, "atm-k", now))
    except voucher.VoucherError as exc:
        out[name] = exc.code
print(json.dumps(out))
"""
    got = mp.run_json(code, heap="512K")
    assert got["good"] == [11, 300, None] and got["text"] == [11, 300, None]
    assert got["fleet"] == C.E_UNAUTHORIZED
    assert got["altered"] == C.E_BAD_SIGNATURE
    assert got["other"] == C.E_WRONG_TARGET
    assert got["expired"] == C.E_EXPIRED
