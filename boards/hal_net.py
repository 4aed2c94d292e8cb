# The network seam of a real board (SPEC 13), apart from hal_machine so that a device without
# a network config never loads it: Wi-Fi station on ESP32 / Pico W. Only boards/ imports
# `network`.
_wlan = None


def up(cfg):
    """True when the board's network can carry a connection to the broker. With an SSID:
    the Wi-Fi station, joined in the background (a poll that finds it still joining says
    False and the link tries again after its backoff). Without one the board's network (a
    cellular modem's PPP link, Ethernet) is brought up by its own driver: True."""
    global _wlan
    ssid = cfg.get("ssid")
    if ssid is None:
        return True
    import network
    if _wlan is None:
        _wlan = network.WLAN(network.STA_IF)
        _wlan.active(True)
    if _wlan.isconnected():
        return True
    if _wlan.status() != network.STAT_CONNECTING:
        _wlan.connect(ssid, cfg.get("psk"))
    return False


def down(cfg):
    """The Wi-Fi station off (a battery device between reports, SPEC 13.5): an associated
    station keeps its radio waking for the access point's beacons. The next up() joins
    again. A cellular modem or Ethernet is its own driver's to power down."""
    global _wlan
    if _wlan is not None:
        _wlan.disconnect()
        _wlan.active(False)
        _wlan = None
