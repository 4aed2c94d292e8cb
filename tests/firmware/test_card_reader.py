"""The water ATM's card reader on the real-board HALs: boards/rc522.py drives the MFRC522
twin (tests/firmware/shims/common/rc522_twin.py, written from the NXP datasheet and ISO
14443-3) over the board's SPI bus: the UID of a card in the field, None without one, a card
that stays is read again at the next poll, and a bus with no chip is a clear HAL error."""
import pytest

from test_real_hals import boot

READ = r'''
import rc522_twin
chip = rc522_twin.chip
out["empty"] = hal.card_uid()
chip.card = b"\xde\xad\xbe\xef"
out["first"] = hal.card_uid().hex()
out["again"] = hal.card_uid().hex()     # the card stays on the reader
chip.card = b"\x01\x02\x03\x04"
out["other"] = [hal.card_uid().hex() for _ in range(2)]
chip.card = None
out["gone"] = hal.card_uid()
out["antenna"] = chip.regs[0x14] & 3
out["frames"] = sorted(set("%s/%d" % (s.hex(), b) for s, b in chip.log))
'''

NO_CHIP = r'''
import rc522_twin
rc522_twin.chip.regs[0x37] = 0x00
rc522_twin.chip.reset = lambda: None
try:
    hal.card_uid()
    out["err"] = None
except OSError as exc:
    out["err"] = str(exc)
'''


@pytest.mark.parametrize("port", ["esp32", "rp2"])
def test_the_hal_reads_card_uids_through_the_rc522(tmp_path, port):
    out = boot(tmp_path, port, READ)
    assert out["empty"] is None
    assert out["first"] == "deadbeef" and out["again"] == "deadbeef"
    assert out["other"] == ["01020304", "01020304"]
    assert out["gone"] is None
    assert out["antenna"] == 3                          # the driver turned the field on
    assert out["frames"] == ["26/7", "9320/0"]          # REQA (7 bits), anticollision CL1


def test_a_bus_without_the_chip_is_a_hal_error(tmp_path):
    out = boot(tmp_path, "esp32", NO_CHIP)
    assert out["err"] and "no MFRC522" in out["err"]
