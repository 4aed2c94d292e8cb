"""The `connect` setting of a device's network config (SPEC 13.5), checked on the host by the
firmware's own netcfg before any device is touched: "always" (default) or "to_report", and a
poll_s range that depends on it (a sleeping device may check for commands once a day; a
connected one must poll often enough to keep its connection alive)."""
import pytest

from edgekit.errors import EdgekitError
from edgekit.fleet import netconfig

BROKER = "mqtt://fleet.example:1883"


def test_connect_defaults_to_always_and_is_shown():
    net = netconfig.build(BROKER)
    assert net["connect"] == "always"
    assert netconfig._netcfg.public(net)["connect"] == "always"


def test_a_sleeping_device_may_poll_once_a_day():
    net = netconfig.build(BROKER, {"connect": "to_report", "poll_s": 86400})
    assert (net["connect"], net["poll_s"]) == ("to_report", 86400)


@pytest.mark.parametrize("extra, words", [
    ({"connect": "sometimes"}, "always or to_report"),
    ({"connect": "always", "poll_s": 7200}, "1..3600 seconds with connect = always"),
    ({"connect": "to_report", "poll_s": 86401}, "1..86400 seconds with connect = to_report"),
])
def test_what_a_device_would_refuse_is_refused_on_the_host(extra, words):
    with pytest.raises(EdgekitError, match=words):
        netconfig.build(BROKER, extra)
