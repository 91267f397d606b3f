"""The collaboration's certificate authority and the stations' MPC certificates.

Each station creates its own private key and a certificate signing request
(CSR); the key never leaves the station. The collaboration's CA signs the
request into a certificate whose common name is the station's name. During
a secure computation every party checks, over TLS, that the peer at party
number i presents a certificate from the collaboration's CA naming the
station that the hub's signed task lists at position i.

Keys are ECDSA on P-256; certificates are X.509 v3 from the `cryptography`
package.
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_KEY_FILE = "ca.key"
CA_CERT_FILE = "ca.crt"
DEFAULT_CA_DAYS = 3650
DEFAULT_STATION_DAYS = 825


class CertificateError(ValueError):
    """A certificate, key or request that cannot be used."""


def _write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600, exist_ok=True)
    path.chmod(0o600)
    path.write_bytes(data)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


@dataclass(frozen=True)
class CertificateAuthority:
    """A CA key and certificate kept in one directory."""

    directory: Path

    @property
    def certificate_path(self) -> Path:
        """The CA certificate, which every station of the collaboration pins."""
        return self.directory / CA_CERT_FILE

    @property
    def key_path(self) -> Path:
        """The CA private key, kept by the collaboration's CA operator only."""
        return self.directory / CA_KEY_FILE

    @classmethod
    def create(
        cls, directory: Path, name: str, days: int = DEFAULT_CA_DAYS
    ) -> CertificateAuthority:
        """Create a new CA in `directory`; refuse if one is already there."""
        authority = cls(directory)
        if authority.key_path.exists():
            raise CertificateError(
                f"{authority.key_path} already exists; use that CA or choose "
                "another directory"
            )
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name(
            [x509.NameAttribute(NameOID.COMMON_NAME, f"{name} collaboration CA")]
        )
        now = _now()
        certificate = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=False,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .sign(key, hashes.SHA256())
        )
        _write_private(authority.key_path, _key_pem(key))
        authority.certificate_path.write_bytes(
            certificate.public_bytes(serialization.Encoding.PEM)
        )
        return authority

    def sign(
        self, request_pem: bytes, station: str, days: int = DEFAULT_STATION_DAYS
    ) -> bytes:
        """Sign a station's CSR into a certificate naming `station`; return PEM.

        The request must name the same station, so that a CSR sent for one
        station cannot be signed for another by mistake.
        """
        try:
            request = x509.load_pem_x509_csr(request_pem)
        except ValueError as error:
            raise CertificateError(
                f"invalid certificate signing request: {error}"
            ) from error
        if not request.is_signature_valid:
            raise CertificateError("the request's self-signature does not verify")
        requested = common_name(request.subject)
        if requested != station:
            raise CertificateError(
                f"the request names station {requested!r}, not {station!r}; "
                "create the request with the station's own name"
            )
        ca_key = serialization.load_pem_private_key(self.key_path.read_bytes(), None)
        ca_certificate = x509.load_pem_x509_certificate(
            self.certificate_path.read_bytes()
        )
        if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
            raise CertificateError(f"{self.key_path} is not an EC private key")
        now = _now()
        certificate = (
            x509.CertificateBuilder()
            .subject_name(request.subject)
            .issuer_name(ca_certificate.subject)
            .public_key(request.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=days))
            .add_extension(
                x509.BasicConstraints(ca=False, path_length=None), critical=True
            )
            .add_extension(
                x509.ExtendedKeyUsage(
                    [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
                ),
                critical=False,
            )
            .add_extension(
                x509.SubjectAlternativeName([x509.DNSName(station)]), critical=False
            )
            .sign(ca_key, hashes.SHA256())
        )
        return certificate.public_bytes(serialization.Encoding.PEM)


def _subject_alternative_names(hosts: list[str]) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return names


def sign_hub_request(
    authority: CertificateAuthority,
    request_pem: bytes,
    hosts: list[str],
    days: int = DEFAULT_STATION_DAYS,
) -> bytes:
    """Sign the hub's CSR into an HTTPS server certificate for `hosts`; return PEM.

    `hosts` are the names or IP addresses that stations and clients use in
    the hub's URL; TLS clients check the URL's host against them.
    """
    if not hosts:
        raise CertificateError(
            "name at least one host of the hub's URL, such as --host 127.0.0.1"
        )
    try:
        request = x509.load_pem_x509_csr(request_pem)
    except ValueError as error:
        raise CertificateError(
            f"invalid certificate signing request: {error}"
        ) from error
    if not request.is_signature_valid:
        raise CertificateError("the request's self-signature does not verify")
    ca_key = serialization.load_pem_private_key(authority.key_path.read_bytes(), None)
    ca_certificate = x509.load_pem_x509_certificate(
        authority.certificate_path.read_bytes()
    )
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise CertificateError(f"{authority.key_path} is not an EC private key")
    now = _now()
    certificate = (
        x509.CertificateBuilder()
        .subject_name(request.subject)
        .issuer_name(ca_certificate.subject)
        .public_key(request.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .add_extension(
            x509.SubjectAlternativeName(_subject_alternative_names(hosts)),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.PEM)


def create_station_key(key_path: Path, station: str) -> bytes:
    """Create the station's private key at `key_path` (mode 0600); return a CSR.

    The returned PEM request goes to the collaboration's CA operator; the key
    stays where it is.
    """
    if key_path.exists():
        raise CertificateError(
            f"{key_path} already exists; delete it first to replace the key"
        )
    key = ec.generate_private_key(ec.SECP256R1())
    _write_private(key_path, _key_pem(key))
    request = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, station)]))
        .sign(key, hashes.SHA256())
    )
    return request.public_bytes(serialization.Encoding.PEM)


def common_name(name: x509.Name) -> str:
    """Return the common name of an X.509 name, or an empty string."""
    attributes = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(attributes[0].value) if attributes else ""


def peer_common_name(peer_certificate: dict | None) -> str:
    """Return the common name from :meth:`ssl.SSLSocket.getpeercert`'s dict."""
    if not peer_certificate:
        return ""
    for relative_name in peer_certificate.get("subject", ()):
        for key, value in relative_name:
            if key == "commonName":
                return str(value)
    return ""
