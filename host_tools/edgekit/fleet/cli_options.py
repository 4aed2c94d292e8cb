"""The options every command that can reach a device through the broker shares (`--via
fleet`): one wording and one default, whichever command a technician types them to."""
from edgekit.fleet.topics import SERVICE_USER

DEFAULT_BROKER = "mqtt://127.0.0.1:1883"


def add_via_fleet(group, via_help):
    """--via port|fleet, --broker URL, --ca FILE on `group` (a parser or an argument group)."""
    group.add_argument("--via", choices=("port", "fleet"), default="port", help=via_help)
    group.add_argument("--broker", default=DEFAULT_BROKER,
                       help="with --via fleet: the broker URL mqtt://HOST[:PORT] or "
                            "mqtts://HOST[:PORT] (TLS) (default %(default)s)")
    group.add_argument("--ca", metavar="FILE",
                       help="with an mqtts:// broker: the CA certificate (PEM or DER) its "
                            "certificate must chain to (default: the system's trust store)")


def add_transfer_waits(group, patience_s, patience_help):
    """--username, --timeout and --patience of a conversation with a device through the
    broker (an OTA transfer): how long an answer and a silent device are waited for."""
    group.add_argument("--username", default=SERVICE_USER,
                       help="broker user with the service's ACL (default %(default)s; "
                            "password in $EDGEKIT_MQTT_PASSWORD)")
    group.add_argument("--timeout", type=float, default=12.0, metavar="S",
                       help="seconds to wait for each answer before asking again; at least "
                            "the device's poll_s plus a few seconds (default %(default)s)")
    group.add_argument("--patience", type=float, default=patience_s, metavar="S",
                       help=patience_help + " (default %(default)s)")
