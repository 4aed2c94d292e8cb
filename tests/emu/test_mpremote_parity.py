"""The emulated board as the official mpremote sees a real ESP32 (issue: `mpremote reset`
exited 0 but only soft-reset, `rtc` failed, `fs ls` showed 0 bytes, `df` printed the host
disk). Each is driven through mpremote itself."""
import os
import re

from conftest import mpremote
from edgekit.board_defs import load_board, parse_size


def test_reset_is_a_cold_boot_on_the_same_flash(emu):
    b = emu.start("esp32")
    try:
        mpremote(b.url, "exec", "open('keep.txt', 'w').write('x')")
        before = b.info()
        mpremote(b.url, "reset")
        b.wait_for(lambda i: i["boots"] > before["boots"], timeout=20)
        after = b.info()
        assert after["pid"] != before["pid"]                  # a new VM: a cold boot
        assert after["resets"]["hard"] == before["resets"].get("hard", 0) + 1
        out = mpremote(b.url, "resume", "exec", "import os, hal, machine; print(os.listdir('/'), "
                                      "machine.reset_cause() == machine.HARD_RESET, "
                                      "hal.reset_cause())")
        assert "keep.txt" in out and "True" in out
        uid = mpremote(b.url, "exec", "import machine; print(machine.unique_id().hex())")
        assert re.fullmatch(r"[0-9a-f]{12,}", uid.strip()), uid
    finally:
        b.stop()


def test_rtc_set_and_get_through_the_emulated_clock(emu):
    b = emu.start("esp32", time="paused")
    try:
        out = mpremote(b.url, "rtc")
        assert out.strip().startswith("(2000, 1, 1, 5,"), out     # unset: the ESP32's epoch
        mpremote(b.url, "rtc", "--set")
        out = mpremote(b.url, "rtc")
        year = int(out.strip().strip("()").split(",")[0])
        assert year >= 2026, out
        # the supervisor's RTC is the one that was set: it survives a soft reset
        assert b.info()["rtc"] is not None
        b.advance(3600)
        later = mpremote(b.url, "rtc")
        assert later != out
        # and a date set by tuple reads back, weekday computed (2026-12-04 is a Friday: 4)
        mpremote(b.url, "exec", "import machine; "
                                "machine.RTC().datetime((2026, 12, 4, 0, 13, 14, 15, 0))")
        out = mpremote(b.url, "exec", "import machine; print(machine.RTC().datetime())")
        assert out.strip().startswith("(2026, 12, 4, 4, 13, 14, 15"), out
    finally:
        b.stop()


def test_fs_ls_sizes_and_df_of_the_board_flash(emu, tmp_path):
    b = emu.start("esp32")
    try:
        src = tmp_path / "blob.bin"
        src.write_bytes(os.urandom(3000))
        out = mpremote(b.url, "fs", "cp", str(src), ":blob.bin", "+", "fs", "ls")
        line = [ln for ln in out.splitlines() if ln.split()[:1] != ["cp"]
                and ln.endswith("blob.bin")][0]
        assert int(line.split()[0]) == 3000, out
        df = mpremote(b.url, "df")
        rows = [ln.split() for ln in df.splitlines()[1:] if ln.strip()]
        mounted = {r[-1]: r for r in rows}
        assert "/.frozen" not in mounted, df            # no filesystem of its own
        size = int(mounted["/"][-5])        # filesystem (a repr: spaces), size, used, ...
        fs = load_board("esp32")["flash"]["fs_size"]
        assert size == parse_size(fs), (df, fs)         # the board's filesystem size
    finally:
        b.stop()
