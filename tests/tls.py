"""Throwaway certificates for TLS tests: a private CA and server certificates it issues.

Contract: everything is generated in memory with `cryptography` (EC P-256 keys, valid from an hour
ago for a day) and written only where the test says; nothing here touches a system trust store.
`CertificateAuthority.certs_dir(path, hosts)` lays a folder out the way `cairn server --certs-dir`
reads it (public.crt, private.key, and the issuing CA in CAs/, as MinIO asks for a private CA).
"""

from __future__ import annotations

import datetime
import ipaddress
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

LOCAL_HOSTS = ("127.0.0.1", "localhost")


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _san(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


class CertificateAuthority:
    """A self-signed CA that issues server certificates for given hostnames and addresses."""

    def __init__(self, name: str = "Cairn test CA") -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = datetime.datetime.now(datetime.UTC)
        self.cert = (
            x509.CertificateBuilder().subject_name(self.name).issuer_name(self.name)
            .public_key(self.key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False, decipher_only=False),
                           critical=True)
            .sign(self.key, hashes.SHA256())
        )

    @property
    def pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def write(self, path: Path) -> Path:
        """Write the CA certificate (what clients trust) to `path`."""
        path.write_bytes(self.pem)
        return path

    def issue(self, hosts: tuple[str, ...] = LOCAL_HOSTS) -> tuple[bytes, bytes]:
        """A server certificate for `hosts` and its private key, both PEM."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])]))
            .issuer_name(self.name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([_san(h) for h in hosts]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(self.key, hashes.SHA256())
        )
        return cert.public_bytes(serialization.Encoding.PEM), _pem_key(key)

    def certs_dir(self, path: Path, hosts: tuple[str, ...] = LOCAL_HOSTS) -> Path:
        """A `--certs-dir` folder at `path` with a certificate for `hosts`, its key and this CA."""
        (path / "CAs").mkdir(parents=True, exist_ok=True)
        cert, key = self.issue(hosts)
        (path / "public.crt").write_bytes(cert)
        (path / "private.key").write_bytes(key)
        self.write(path / "CAs" / "ca.crt")
        return path
