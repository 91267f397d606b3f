"""Flower (flwr 1.42) deployment-engine processes for federated training.

A collaboration runs one SuperLink beside the hub, and every station runs
one long-lived SuperNode that the station daemon supervises. Every Flower
process gets the environment of :func:`flower_environment`: telemetry, the
update check and runtime dependency installation (``uv sync``) are off, and
``FLWR_HOME`` points into the owner's state directory, so that Flower's
config, credentials and installed app bundles stay there.

TLS on the SuperLink uses a certificate from the collaboration's CA for the
address the SuperNodes dial (an IP address or a DNS name). SuperNode
authentication uses each station's own EC key (the key of its MPC
certificate): the SuperLink runs with ``--enable-supernode-auth`` and accepts
only SuperNodes whose public key was registered with ``flwr supernode
register``, under the station's name.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

# The SuperLink connection name written into every FLWR_HOME/config.toml.
CONNECTION = "linksight"
# Days a SuperLink certificate issued by :func:`issue_superlink_certificate` lasts.
SUPERLINK_CERTIFICATE_DAYS = 825


class FlowerError(RuntimeError):
    """A Flower command failed; the message contains its output."""


def flower_bin_dir() -> Path:
    """Return the folder of this interpreter's Flower commands."""
    return Path(sys.executable).parent


def flower_environment(home: Path) -> dict[str, str]:
    """Return the environment for a Flower process whose FLWR_HOME is `home`.

    The SuperLink starts ``flower-superexec`` and the SuperNode starts
    ``flwr-clientapp`` by name, so this interpreter's folder comes first on
    PATH.
    """
    home.mkdir(parents=True, exist_ok=True)
    path = os.pathsep.join([str(flower_bin_dir()), os.environ.get("PATH", "")])
    return dict(
        os.environ,
        PATH=path,
        PYTHONUNBUFFERED="1",
        FLWR_HOME=str(home),
        FLWR_TELEMETRY_ENABLED="0",
        FLWR_DISABLE_UPDATE_CHECK="1",
        FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION="1",
    )


def app_directory() -> Path:
    """Return the Flower app project shipped with Linksight (its pyproject.toml).

    The app names the platform's own ServerApp and ClientApp modules; it
    contains no training code of its own, and no scientist's code.
    """
    return Path(__file__).resolve().parent / "flower_app"


def write_connection(
    home: Path, address: str, ca_certificate: Path | None, insecure: bool = False
) -> None:
    """Write FLWR_HOME/config.toml naming the SuperLink at `address`."""
    home.mkdir(parents=True, exist_ok=True)
    lines = [
        "[superlink]",
        f'default = "{CONNECTION}"',
        "",
        f"[superlink.{CONNECTION}]",
        f"address = {json.dumps(address)}",
    ]
    if insecure:
        lines.append("insecure = true")
    elif ca_certificate is not None:
        lines.append(f"root-certificates = {json.dumps(str(ca_certificate))}")
    (home / "config.toml").write_text("\n".join(lines) + "\n")


def issue_superlink_certificate(
    ca_directory: Path, host: str, certificate_path: Path, key_path: Path
) -> None:
    """Issue a TLS server certificate for the SuperLink at `host` from the CA.

    `ca_directory` contains the collaboration CA's ``ca.crt`` and ``ca.key``
    (see :mod:`linksight.certificates`). The subject alternative name is an
    IP address when `host` is one, else a DNS name.
    """
    ca_key = serialization.load_pem_private_key(
        (ca_directory / "ca.key").read_bytes(), None
    )
    ca_certificate = x509.load_pem_x509_certificate(
        (ca_directory / "ca.crt").read_bytes()
    )
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise FlowerError(f"{ca_directory / 'ca.key'} is not an EC private key")
    key = ec.generate_private_key(ec.SECP256R1())
    try:
        name: x509.GeneralName = x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        name = x509.DNSName(host)
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)]))
        .issuer_name(ca_certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=SUPERLINK_CERTIFICATE_DAYS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False)
        .add_extension(x509.SubjectAlternativeName([name]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key_path.touch(mode=0o600)
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    certificate_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))


def supernode_keys(
    private_key_path: Path, ssh_private_key_path: Path, public_key_path: Path
) -> None:
    """Write a station's EC key in the OpenSSH formats Flower reads.

    ``flower-supernode --auth-supernode-private-key`` reads an OpenSSH private
    key, and ``flwr supernode register`` an OpenSSH public key; the station's
    key (PEM, from :func:`linksight.certificates.create_station_key`) is the
    same key in another encoding.
    """
    key = serialization.load_pem_private_key(private_key_path.read_bytes(), None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise FlowerError(
            f"{private_key_path} is not an EC private key; Flower's SuperNode "
            "authentication needs a NIST curve key such as P-256"
        )
    ssh_private_key_path.touch(mode=0o600)
    ssh_private_key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.OpenSSH,
            serialization.NoEncryption(),
        )
    )
    public_key_path.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
        )
    )


def superlink_command(
    host: str,
    port: int,
    database: Path,
    certificate: Path | None = None,
    key: Path | None = None,
    ca_certificate: Path | None = None,
    node_authentication: bool = True,
) -> list[str]:
    """Return the flower-superlink command line: TLS unless no certificate."""
    command = [
        str(flower_bin_dir() / "flower-superlink"),
        "--host",
        host,
        "--port",
        str(port),
        "--database",
        str(database),
        "--disable-runtime-dependency-installation",
    ]
    if certificate is None:
        command.append("--insecure")
    else:
        command += [
            "--ssl-certfile",
            str(certificate),
            "--ssl-keyfile",
            str(key),
            "--ssl-ca-certfile",
            str(ca_certificate),
        ]
    if node_authentication:
        command.append("--enable-supernode-auth")
    return command


def run_flwr(home: Path, arguments: list[str], timeout: float = 60.0) -> dict[str, Any]:
    """Run ``flwr ARGUMENTS --format json`` with FLWR_HOME `home`; return its JSON.

    Raises
    ------
    FlowerError
        The command exited non-zero, timed out or printed no JSON object.
    """
    command = [str(flower_bin_dir() / "flwr"), *arguments, "--format", "json"]
    try:
        completed = subprocess.run(
            command,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=flower_environment(home),
        )
    except subprocess.TimeoutExpired as error:
        raise FlowerError(
            f"flwr {' '.join(arguments)} timed out after {timeout:.0f} s"
        ) from error
    output = completed.stdout.strip()
    start = output.find("{")
    try:
        parsed = json.loads(output[start:]) if start >= 0 else None
    except json.JSONDecodeError:
        parsed = None
    if completed.returncode != 0 or not isinstance(parsed, dict):
        detail = (completed.stderr.strip() or output)[-2000:]
        raise FlowerError(
            f"flwr {' '.join(arguments)} failed with status "
            f"{completed.returncode}: {detail}"
        )
    if parsed.get("success") is False:
        raise FlowerError(
            f"flwr {' '.join(arguments)} failed: "
            f"{parsed.get('error-message') or parsed}"
        )
    return parsed


def register_supernode(home: Path, public_key: Path, station: str) -> int:
    """Register a station's SuperNode public key; return the node id."""
    output = run_flwr(
        home, ["supernode", "register", str(public_key), CONNECTION, "--name", station]
    )
    return int(output["node-id"])
