"""`edgekit flash --runtime`: the esptool and UF2 paths, with a fake esptool and a fake
BOOTSEL drive (writing a real chip's flash needs the chip; docs/flashing.md says how)."""
import struct

import pytest

from edgekit.flash import runtime_image as R
from edgekit.flash.runtime_image import RuntimeImageError
from edgekit.ota.bundle import load_board


def esp_image(chip_id, size=4096):
    head = bytes([R.ESP_IMAGE_MAGIC, 3, 2, 0x20]) + b"\x00" * 8 + struct.pack("<H", chip_id)
    return head + b"\xff" * (size - len(head))


def uf2(family, blocks=3, flags=R.UF2_FAMILY_FLAG):
    out = b""
    for i in range(blocks):
        head = struct.pack("<IIIIIIII", R.UF2_MAGIC[0], R.UF2_MAGIC[1], flags,
                           0x10000000 + 256 * i, 256, i, blocks, family)
        out += head + b"\x00" * (508 - len(head)) + struct.pack("<I", R.UF2_MAGIC_END)
    return out


class FakeEsp:
    def __init__(self, name, calls):
        self.CHIP_NAME = name
        self.calls = calls

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.calls.append(("close",))


class FakeEsptool:
    """Records what edgekit asks of esptool.cmds, in order."""

    def __init__(self, chip_name):
        self.chip_name = chip_name
        self.calls = []

    def detect_chip(self, port, baud):
        self.calls.append(("detect_chip", port, baud))
        return FakeEsp(self.chip_name, self.calls)

    def __getattr__(self, name):
        def record(esp, *args, **kwargs):
            self.calls.append((name,) + args + tuple(sorted(kwargs.items())))
            return esp
        return record


@pytest.mark.parametrize("board, chip, chip_id, offset, name", [
    ("esp32", "esp32", 0, 0x1000, "ESP32"), ("esp32s3", "esp32s3", 9, 0x0, "ESP32-S3")])
def test_esptool_writes_at_the_board_offset_and_verifies(board, chip, chip_id, offset, name):
    data = esp_image(chip_id)
    plan = R.esptool_plan(load_board(board), "/dev/ttyUSB0", data)
    assert plan == {"port": "/dev/ttyUSB0", "chip": chip, "baud": 460800, "offset": offset,
                    "size": len(data), "erase": False}
    tool = FakeEsptool(name)
    result = R.run_esptool(plan, data, tool)
    names = [c[0] for c in tool.calls]
    assert names == ["detect_chip", "run_stub", "attach_flash", "write_flash", "verify_flash",
                     "reset_chip", "close"]
    write = tool.calls[3]
    assert write[1] == [(offset, data)] and ("compress", True) in write
    assert tool.calls[4][1] == [(offset, data)]
    assert tool.calls[5][1] == "hard-reset"
    assert result["verified"] and result["offset"] == offset and not result["erased"]


def test_wipe_erases_the_chip_before_writing():
    data = esp_image(0)
    tool = FakeEsptool("ESP32")
    R.run_esptool(R.esptool_plan(load_board("esp32"), "serial:/dev/ttyUSB1", data, wipe=True),
                  data, tool)
    names = [c[0] for c in tool.calls]
    assert names.index("erase_flash") < names.index("write_flash")
    assert tool.calls[0][1] == "/dev/ttyUSB1"


def test_esptool_refuses_another_chip_on_the_port():
    data = esp_image(0)
    tool = FakeEsptool("ESP32-C3")
    with pytest.raises(RuntimeImageError, match="is an ESP32-C3, the board definition says"):
        R.run_esptool(R.esptool_plan(load_board("esp32"), "/dev/ttyUSB0", data), data, tool)
    assert "write_flash" not in [c[0] for c in tool.calls]


@pytest.mark.parametrize("data, message", [
    (esp_image(9), "built for ESP chip id 9, this board is an esp32"),
    (b"\x7fELF" + b"\x00" * 100, "not an ESP32 firmware image"),
    (uf2(0xE48BFF56), "not an ESP32 firmware image"),
])
def test_esp_images_for_other_chips_are_refused(data, message):
    with pytest.raises(RuntimeImageError, match=message):
        R.esptool_plan(load_board("esp32"), "/dev/ttyUSB0", data)


def test_runtime_needs_a_real_port():
    with pytest.raises(RuntimeImageError, match="not a USB serial port"):
        R.esptool_plan(load_board("esp32"), "socket://127.0.0.1:4000", esp_image(0))
    with pytest.raises(RuntimeImageError, match="takes its runtime as a UF2"):
        R.esptool_plan(load_board("rp2040"), "/dev/ttyACM0", esp_image(0))


# -- UF2 ----------------------------------------------------------------------------------
RP2 = load_board("rp2040")


def drive(tmp_path, name, board_id):
    d = tmp_path / name
    d.mkdir()
    if board_id:
        (d / R.INFO_FILE).write_text(f"UF2 Bootloader v3.0\r\nModel: Raspberry Pi RP2\r\n"
                                     f"Board-ID: {board_id}\r\n")
    return d


def test_uf2_images_are_checked_block_by_block():
    assert R.check_uf2(uf2(0xE48BFF56, 5), RP2["runtime_image"]) == 5
    with pytest.raises(RuntimeImageError, match="family 0xe48bff57, this board needs"):
        R.check_uf2(uf2(0xE48BFF57), RP2["runtime_image"])
    with pytest.raises(RuntimeImageError, match="not whole 512-byte blocks"):
        R.check_uf2(uf2(0xE48BFF56)[:-1], RP2["runtime_image"])
    bad = bytearray(uf2(0xE48BFF56))
    bad[512 + 508] ^= 1
    with pytest.raises(RuntimeImageError, match="UF2 block 1 has no UF2 magic"):
        R.check_uf2(bytes(bad), RP2["runtime_image"])
    with pytest.raises(RuntimeImageError, match="family"):
        R.check_uf2(uf2(0xE48BFF56, flags=0), RP2["runtime_image"])


def test_bootsel_drive_is_found_by_its_info_file(tmp_path):
    pico = drive(tmp_path, "RPI-RP2", "RPI-RP2")
    drive(tmp_path, "USBSTICK", None)
    drive(tmp_path, "OTHER", "ADAFRUIT-FEATHER")
    roots = sorted(str(p) for p in tmp_path.iterdir())
    assert R.find_bootsel(RP2["runtime_image"], roots) == [pico]


def test_uf2_is_copied_to_the_one_drive(tmp_path):
    pico = drive(tmp_path, "RPI-RP2", "RPI-RP2")
    data = uf2(0xE48BFF56, 4)
    entered = []
    result = R.write_uf2(RP2, "/dev/ttyACM0", data, search=[str(pico)], enter=entered.append)
    assert (pico / result["file"]).read_bytes() == data
    assert result["blocks"] == 4 and not result["entered_bootsel"] and entered == []


def test_a_running_board_is_sent_to_bootsel_first(tmp_path):
    root = tmp_path / "media"
    root.mkdir()
    data = uf2(0xE48BFF56)

    def enter(port):       # what machine.bootloader() does: the drive appears
        assert port == "/dev/ttyACM0"
        drive(root, "RPI-RP2", "RPI-RP2")

    result = R.write_uf2(RP2, "/dev/ttyACM0", data,
                         search=_Glob(root), enter=enter, sleep=lambda s: None)
    assert result["entered_bootsel"] and (root / "RPI-RP2" / result["file"]).exists()


class _Glob(list):
    """A search list that looks at a directory's children afresh on every iteration."""

    def __init__(self, root):
        super().__init__()
        self.root = root

    def __iter__(self):
        return iter(sorted(str(p) for p in self.root.iterdir()))


def test_no_drive_or_two_drives_are_clear_errors(tmp_path):
    data = uf2(0xE48BFF56)
    with pytest.raises(RuntimeImageError, match="hold the board's BOOTSEL button"):
        R.write_uf2(RP2, None, data, search=[str(tmp_path)], wait=0)
    a = drive(tmp_path, "A", "RPI-RP2")
    b = drive(tmp_path, "B", "RPI-RP2")
    with pytest.raises(RuntimeImageError, match="2 boards are in BOOTSEL mode"):
        R.write_uf2(RP2, None, data, search=[str(a), str(b)])


def test_boards_without_a_runtime_method_say_so():
    with pytest.raises(RuntimeImageError, match="no runtime_image method"):
        R.method_of({"name": "x"})
