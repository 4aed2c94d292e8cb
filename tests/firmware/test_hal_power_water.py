"""Register decoding of the smart bin's and water ATM's I2C parts (INA219 current/voltage
monitor, ADS1115 ADC), in micropython, against values worked out from the datasheets."""
import pytest

from edgekit.testing import mp


@pytest.fixture(scope="module")
def out():
    return mp.run_json(r"""
import json, hal_common as h
def tryit(fn, *a):
    try:
        return fn(*a)
    except h.HalError as exc:
        return "ERR " + str(exc)
r = {}
# INA219 (SBOS448): shunt LSB 10 uV; bus voltage in bits 15..3, LSB 4 mV, bit 1 CNVR, bit 0 OVF
r["charge"] = h.ina219_decode(b"\x0f\xa0", b"\x5d\xc2", 10)      # +40 mV, 12 V, CNVR set
r["discharge"] = h.ina219_decode(b"\xf0\x60", b"\x1c\xe8", 10)   # -40 mV, 3.7 V
r["small"] = h.ina219_decode(b"\x00\x05", b"\x3a\x98", 100)      # 50 uV over 100 mOhm
r["ovf"] = tryit(h.ina219_decode, b"\x0f\xa0", b"\x5d\xc3", 10)
r["short"] = tryit(h.ina219_decode, b"\x0f", b"\x5d\xc3", 10)
# ADS1115 (SBAS444): two's complement, full scale +-4.096 V
r["ads"] = [h.ads1115_mv(b"\x7f\xff"), h.ads1115_mv(b"\x80\x00"), h.ads1115_mv(b"\x40\x00"),
            h.ads1115_mv(b"\x00\x00"), h.ads1115_mv(b"\x20\x00", 2048)]
r["ads_short"] = tryit(h.ads1115_mv, b"\x7f")
print(json.dumps(r))
""")


def test_ina219_current_both_ways_and_bus_voltage(out):
    assert out["charge"] == {"mv": 12000, "ma": 4000}
    assert out["discharge"] == {"mv": 3700, "ma": -4000}
    assert out["small"] == {"mv": 7500, "ma": 0}   # 0.5 mA truncates toward zero


def test_ina219_overflow_and_short_reads_are_errors(out):
    assert out["ovf"].startswith("ERR") and "overflow" in out["ovf"]
    assert out["short"].startswith("ERR") and "2-byte" in out["short"]


def test_ads1115_millivolts(out):
    assert out["ads"] == [4095, -4096, 2048, 0, 512]
    assert out["ads_short"].startswith("ERR")
