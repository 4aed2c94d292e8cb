"""A Mosquitto configuration enforcing SPEC 13.4: named users with passwords (no anonymous
client), client id = username (use_username_as_clientid: one device cannot take over another's
session), and the ACL that pins each device to its own two topics. Used by the tests against
a real Mosquitto and as the starting point of a deployment (docs/fleet.md)."""
import getpass
import shutil
import subprocess
from pathlib import Path

from edgekit.errors import EdgekitError
from edgekit.fleet.topics import SERVICE_USER

def acl(service_users=(SERVICE_USER,)):
    """SPEC 13.4: each service user (one per worker: Mosquitto makes the client id the
    username) reads every up-topic and writes every down-topic; a device (username = its id)
    writes only ek/<id>/up and reads only ek/<id>/down."""
    blocks = "".join(f"user {u}\ntopic read ek/+/up\ntopic write ek/+/down\n\n"
                     for u in service_users)
    return blocks + "pattern write ek/%u/up\npattern read ek/%u/down\n"


def binary():
    """The mosquitto executable, or None (Debian: /usr/sbin is not always on PATH)."""
    return shutil.which("mosquitto") or next(
        (p for p in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto") if Path(p).exists()),
        None)


def write_config(folder, port, users, host="127.0.0.1", service_users=(SERVICE_USER,),
                 tls=None):
    """Write mosquitto.conf, its password file and ACL into `folder` for `users`
    ({username: password}; `service_users` among them are the fleet service's workers);
    return the config's path. `tls` = (certificate chain file, key file), both PEM: the
    listener serves mqtts:// (TLS 1.2 or later) instead of plain MQTT."""
    passwd = shutil.which("mosquitto_passwd")
    if passwd is None:
        raise EdgekitError("mosquitto_passwd is not installed: apt-get install mosquitto")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    pw_file = folder / "passwd"
    pw_file.write_text("")
    pw_file.chmod(0o600)
    for user, password in users.items():
        if ":" in user or not user:
            raise EdgekitError(f"MQTT username {user!r}: no ':' and not empty")
        subprocess.run([passwd, "-b", str(pw_file), user, password], check=True,
                       capture_output=True)
    (folder / "acl").write_text(acl(service_users))
    conf = folder / "mosquitto.conf"
    # Started as root, mosquitto drops to user "mosquitto", who cannot read files written
    # here: it stays the user who wrote them.
    conf.write_text(f"""user {getpass.getuser()}
per_listener_settings false
allow_anonymous false
password_file {pw_file}
acl_file {folder / 'acl'}
persistence false
listener {port} {host}
use_username_as_clientid true
{_tls_lines(tls)}""")
    return conf


def _tls_lines(tls):
    if not tls:
        return ""
    cert, key = (Path(p).resolve() for p in tls)
    for f in (cert, key):
        if not f.is_file():
            raise EdgekitError(f"TLS listener: {f} does not exist")
    # No cafile/require_certificate: clients are named by username and password (and
    # believed by their signatures, SPEC 13.4); TLS here authenticates the broker.
    return f"certfile {cert}\nkeyfile {key}\ntls_version tlsv1.2\n"
