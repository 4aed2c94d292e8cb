# The VM's own `os`, with urandom noting whether the radio ran while it was drawn (on the
# ESP32, esp_random is only truly random with Wi-Fi or BT on: ESP-IDF "Random Number
# Generation").
import sys

import shimcore as _c

_path = sys.path
sys.path = []
try:
    import os as _os
finally:
    sys.path = _path
del _path

for _n in dir(_os):
    if not _n.startswith("__"):
        globals()[_n] = getattr(_os, _n)


def urandom(n):
    import network
    _c.log("urandom", n, network.radio[0])
    return _os.urandom(n)
