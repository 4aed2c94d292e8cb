# Strict `network` of the esp32 port, the part key generation uses: WLAN(STA_IF/AP_IF)
# singletons and active([bool]) (ports/esp32/network_wlan.c).
import shimcore as _c

STA_IF = 0
AP_IF = 1
radio = [False]


class WLAN:
    _ifs = {}

    def __new__(cls, interface_id=STA_IF):
        if interface_id not in (STA_IF, AP_IF):
            raise ValueError("invalid WLAN interface identifier")
        w = cls._ifs.get(interface_id)
        if w is None:
            w = object.__new__(cls)
            w._active = False
            cls._ifs[interface_id] = w
        return w

    def __init__(self, interface_id=STA_IF):
        pass

    def active(self, *a):
        if len(a) > 1:
            raise TypeError("function takes at most 2 positional arguments")
        if a:
            self._active = bool(a[0])
            radio[0] = any(w._active for w in WLAN._ifs.values())
            _c.log("wlan_active", self._active)
            return None
        return self._active
