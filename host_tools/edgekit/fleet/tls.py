"""TLS on the host's side of the network path (SPEC 13.6): the broker's CA certificate as the
device gets it (read_ca: PEM or DER in, DER out, checked the way the device's TLS stack will
use it) and the client context paho connects with (client_context: CERT_REQUIRED and the host
name checked, against that CA or the system's trust store)."""
import datetime
import hashlib
import ssl
from pathlib import Path

from edgekit.errors import EdgekitError, LinkError
from edgekit.fleet.netconfig import CA_MAX


def read_ca(path):
    """The CA certificate in `path` (PEM or DER) as DER, refused with the reason when the
    device could not use it: not one X.509 certificate, larger than CA_MAX, a key type
    mbedTLS on the boards does not verify, or outside its validity period."""
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    from cryptography.hazmat.primitives.serialization import Encoding
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise EdgekitError(f"--ca {path}: {exc.strerror or exc}") from None
    try:
        certs = x509.load_pem_x509_certificates(data) if b"-----BEGIN" in data \
            else [x509.load_der_x509_certificate(data)]
    except ValueError as exc:
        raise EdgekitError(f"--ca {path}: not an X.509 certificate (PEM or DER): {exc}") \
            from None
    if len(certs) != 1:
        raise EdgekitError(f"--ca {path}: holds {len(certs)} certificates; give the one CA "
                           "that issued the broker's certificate")
    cert = certs[0]
    der = cert.public_bytes(Encoding.DER)
    if len(der) > CA_MAX:
        raise EdgekitError(f"--ca {path}: {len(der)} bytes of DER, a device keeps at most "
                           f"{CA_MAX}: use the issuing CA, not a bundle")
    key = cert.public_key()
    if not isinstance(key, (rsa.RSAPublicKey, ec.EllipticCurvePublicKey)):
        raise EdgekitError(f"--ca {path}: a {type(key).__name__} key; the boards' TLS "
                           "(mbedTLS) verifies RSA and ECDSA certificates only")
    now = datetime.datetime.now(datetime.timezone.utc)
    if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
        raise EdgekitError(f"--ca {path}: valid {cert.not_valid_before_utc:%Y-%m-%d} .. "
                           f"{cert.not_valid_after_utc:%Y-%m-%d}, not now")
    return der


def fingerprint(der):
    """What diag shows of a device's CA: its SHA-256, hex."""
    return hashlib.sha256(der).hexdigest()


def client_context(ca=None):
    """An ssl.SSLContext for paho: the broker's certificate must chain to `ca` (a file, PEM
    or DER) or, without one, to the system's trust store, and name the broker's host."""
    cadata = read_ca(ca) if ca else None
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cadata=cadata)
    ctx.check_hostname = True
    ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def refused(exc, host, port, ca):
    """A LinkError saying why the broker's certificate was not accepted, and what to do."""
    trust = f"the CA in {ca}" if ca else "the system's trust store (give --ca FILE)"
    return LinkError(f"the MQTT broker at {host}:{port} failed TLS verification against "
                     f"{trust}: {getattr(exc, 'verify_message', None) or exc}; check --ca "
                     "and that the host in --broker is the one its certificate names")
