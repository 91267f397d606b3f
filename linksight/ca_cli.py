"""`linksight ca ...`: the collaboration's certificate authority.

It signs the stations' certificates for MPC links and the hub's HTTPS
certificate.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from linksight.certificates import (
    CertificateAuthority,
    CertificateError,
    sign_hub_request,
)

app = typer.Typer(help="Create the collaboration's CA and sign station certificates.")

CaDir = Annotated[
    Path,
    typer.Option("--dir", help="Folder with ca.key and ca.crt (keep ca.key safe)."),
]


@app.command()
def init(
    directory: CaDir,
    name: Annotated[str, typer.Option(help="Collaboration name, for the CA's name.")],
    days: Annotated[
        int, typer.Option(help="Validity of the CA certificate in days.")
    ] = 3650,
) -> None:
    """Create a new CA; give ca.crt to every station, keep ca.key offline."""
    try:
        authority = CertificateAuthority.create(directory, name, days=days)
    except CertificateError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(1) from error
    typer.echo(f"created CA certificate {authority.certificate_path}")


@app.command()
def sign(
    directory: CaDir,
    station: Annotated[str, typer.Option(help="Station name the request must carry.")],
    request: Annotated[Path, typer.Argument(help="The station's CSR (PEM).")],
    out: Annotated[Path, typer.Option(help="Where to write the certificate (PEM).")],
    days: Annotated[int, typer.Option(help="Validity in days.")] = 825,
) -> None:
    """Sign a station's certificate request; send the certificate back to it."""
    authority = CertificateAuthority(directory)
    if not authority.key_path.exists():
        typer.echo(
            f"error: no CA in {directory}: run `linksight ca init --dir {directory}` "
            "first",
            err=True,
        )
        raise typer.Exit(1)
    try:
        certificate = authority.sign(request.read_bytes(), station, days=days)
    except (CertificateError, OSError) as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(1) from error
    out.write_bytes(certificate)
    typer.echo(f"wrote certificate for station {station!r} to {out}")


@app.command("sign-hub")
def sign_hub(
    directory: CaDir,
    request: Annotated[Path, typer.Argument(help="The hub's CSR (PEM).")],
    host: Annotated[
        list[str],
        typer.Option(
            help="Host name or IP address in the hub's URL; repeat for several."
        ),
    ],
    out: Annotated[Path, typer.Option(help="Where to write the certificate (PEM).")],
    days: Annotated[int, typer.Option(help="Validity in days.")] = 825,
) -> None:
    """Sign the hub's certificate request (from `linksight hub csr`) for HTTPS."""
    authority = CertificateAuthority(directory)
    if not authority.key_path.exists():
        typer.echo(
            f"error: no CA in {directory}: run `linksight ca init --dir {directory}` "
            "first",
            err=True,
        )
        raise typer.Exit(1)
    try:
        certificate = sign_hub_request(
            authority, request.read_bytes(), list(host), days=days
        )
    except (CertificateError, OSError) as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(1) from error
    out.write_bytes(certificate)
    typer.echo(f"wrote the hub's certificate for {', '.join(host)} to {out}")
