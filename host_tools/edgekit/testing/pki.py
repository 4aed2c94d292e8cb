"""Throwaway TLS material for tests and benches: a CA and a server certificate it issued,
made with `cryptography` in a temporary folder (no key is ever committed). ECDSA P-256 by
default: its CA certificate (about 400 bytes of DER) fits a 1 KB provisioning frame."""
import datetime
import ipaddress
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

DAY = datetime.timedelta(days=1)


def _name(cn):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _write(folder, stem, cert, key):
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    crt = folder / f"{stem}.pem"
    crt.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    if key is not None:
        k = folder / f"{stem}.key"
        k.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                        serialization.PrivateFormat.PKCS8,
                                        serialization.NoEncryption()))
        k.chmod(0o600)
    return crt


class CA:
    """A certificate authority: `cert_file` (PEM) is what devices and services trust."""

    def __init__(self, folder, name="edgekit test CA"):
        self.folder = Path(folder)
        self.stem = name.replace(" ", "-")
        self.key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.timezone.utc)
        self.cert = (x509.CertificateBuilder()
                     .subject_name(_name(name)).issuer_name(_name(name))
                     .public_key(self.key.public_key())
                     .serial_number(x509.random_serial_number())
                     .not_valid_before(now - DAY).not_valid_after(now + 30 * DAY)
                     .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                     .add_extension(x509.KeyUsage(False, False, False, False, False, True, True,
                                                  False, False), critical=True)
                     .sign(self.key, hashes.SHA256()))
        self.cert_file = _write(self.folder, self.stem, self.cert, None)

    @property
    def der(self):
        return self.cert.public_bytes(serialization.Encoding.DER)

    def server(self, hosts=("localhost", "127.0.0.1"), stem=None):
        """Issue a server certificate for `hosts` (names and IP addresses); return the paths
        (certificate chain PEM, key PEM) a broker's TLS listener takes."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.timezone.utc)
        alt = []
        for h in hosts:
            try:
                alt.append(x509.IPAddress(ipaddress.ip_address(h)))
            except ValueError:
                alt.append(x509.DNSName(h))
        cert = (x509.CertificateBuilder()
                .subject_name(_name(hosts[0])).issuer_name(self.cert.subject)
                .public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - DAY).not_valid_after(now + 30 * DAY)
                .add_extension(x509.SubjectAlternativeName(alt), critical=False)
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]),
                               critical=False)
                .sign(self.key, hashes.SHA256()))
        stem = stem or f"{self.stem}-server-{hosts[0]}"
        crt = _write(self.folder, stem, cert, key)
        return crt, self.folder / f"{stem}.key"
