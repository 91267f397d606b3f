"""The hub's command line: ``linksight hub serve | init | public-key``.

Every option can also be set through the environment variable named in its
help; an option given on the command line wins.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, Any

import typer
import uvicorn
from pydantic import ValidationError

from governance.bootstrap import AlreadyInitialisedError, initialise_hub
from governance.config import HubSettings
from governance.db import Database, describe_url, sqlite_file
from linksight.signing import (
    SignatureError,
    load_or_create_private_key,
    public_key_text,
)

logger = logging.getLogger("linksight.hub")

app = typer.Typer(
    help="Run and set up the Linksight governance hub.",
    no_args_is_help=True,
    add_completion=False,
)

StateDir = Annotated[
    Path,
    typer.Option(
        "--state-dir",
        envvar="LINKSIGHT_HUB_STATE_DIR",
        help="Directory that contains the hub's database hub.db and its signing "
        "key hub_ed25519.pem.",
    ),
]
DatabaseUrl = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        help="SQLAlchemy URL of the hub database (default: sqlite:///STATE_DIR/"
        "hub.db; env var: LINKSIGHT_HUB_DATABASE_URL).",
    ),
]


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code=1)


def _settings(**values: Any) -> HubSettings:
    try:
        return HubSettings.from_env(**values)
    except ValidationError as exc:
        raise _fail(f"invalid hub settings:\n{exc}") from exc


@app.command()
def serve(
    state_dir: StateDir,
    host: Annotated[
        str | None,
        typer.Option(
            help="Address to listen on (default: 127.0.0.1; env var: "
            "LINKSIGHT_HUB_HOST)."
        ),
    ] = None,
    port: Annotated[
        int | None,
        typer.Option(
            help="TCP port to listen on (default: 8700; env var: LINKSIGHT_HUB_PORT)."
        ),
    ] = None,
    database_url: DatabaseUrl = None,
    tls_certificate: Annotated[
        Path | None,
        typer.Option(
            help="PEM certificate to serve HTTPS with, such as one from `linksight "
            "ca sign-hub` (env var: LINKSIGHT_HUB_TLS_CERTIFICATE); without it "
            "the hub serves plain HTTP."
        ),
    ] = None,
    tls_key: Annotated[
        Path | None,
        typer.Option(
            help="PEM private key of --tls-certificate (env var: "
            "LINKSIGHT_HUB_TLS_KEY)."
        ),
    ] = None,
) -> None:
    """Run the hub's REST service until interrupted."""
    settings = _settings(
        state_dir=state_dir,
        host=host,
        port=port,
        database_url=database_url,
        tls_certificate=tls_certificate,
        tls_key=tls_key,
    )
    init_command = f"linksight hub init --state-dir {settings.state_dir} --admin NAME"
    # Opening a SQLite database creates its file and folder, so a missing
    # file is reported before anything is opened.
    database_file = sqlite_file(settings.database_url)
    if database_file is not None and not database_file.is_file():
        raise _fail(
            f"the hub database {database_file} does not exist, so this hub was "
            f"never initialised; run `{init_command}` first, which creates it"
        )
    database = Database(settings.database_url)
    try:
        initialised = database.is_initialised()
    finally:
        database.close()
    if not initialised:
        raise _fail(
            f"the hub database {describe_url(settings.database_url)} has no users; "
            f"run `{init_command}` first"
        )

    # Imported here so that `init` and `public-key` do not load FastAPI.
    from governance.app import create_app

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # httpx logs every request at INFO, one line per poll of the hub.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    application = create_app(settings)
    logger.info(
        "starting the hub on %s://%s:%s with database %s",
        settings.scheme,
        settings.host,
        settings.port,
        describe_url(settings.database_url),
    )
    uvicorn.run(
        application,
        host=settings.host,
        port=settings.port,
        access_log=False,
        ssl_certfile=settings.tls_certificate,
        ssl_keyfile=settings.tls_key,
    )


@app.command()
def csr(
    key: Annotated[
        Path, typer.Option(help="Where to create the hub's TLS private key (0600).")
    ],
    out: Annotated[Path, typer.Option(help="Where to write the request (PEM).")],
    name: Annotated[
        str, typer.Option(help="Common name of the certificate.")
    ] = "linksight-hub",
) -> None:
    """Create the hub's TLS key and a request for `linksight ca sign-hub`."""
    from linksight.certificates import CertificateError, create_station_key

    try:
        request = create_station_key(key, name)
    except CertificateError as error:
        raise _fail(str(error)) from error
    out.write_bytes(request)
    typer.echo(f"created key {key} and certificate request {out}")


@app.command()
def init(
    state_dir: StateDir,
    admin: Annotated[str, typer.Option(help="Name of the first admin user.")],
    organisation: Annotated[
        str, typer.Option(help="Organisation of the admin, created with it.")
    ] = "hub",
    database_url: DatabaseUrl = None,
) -> None:
    """Create the hub's database, signing key and first admin.

    The admin's token is printed once, alone on the last line of the
    output, so that scripts can capture it with `tail -n 1`.
    """
    settings = _settings(state_dir=state_dir, database_url=database_url)
    try:
        token = initialise_hub(settings, admin, organisation)
    except AlreadyInitialisedError as exc:
        raise _fail(str(exc)) from exc
    except ValidationError as exc:
        raise _fail(f"invalid admin or organisation name:\n{exc}") from exc
    typer.echo(
        f"Initialised the hub in {settings.state_dir} "
        f"(database {describe_url(settings.database_url)})."
    )
    typer.echo(
        f"Created admin {admin!r} of organisation {organisation!r}. "
        "Its token follows; it is not stored and cannot be shown again:"
    )
    typer.echo(token)


@app.command("public-key")
def public_key(state_dir: StateDir) -> None:
    """Print the hub's public key, for the configuration of each station."""
    settings = _settings(state_dir=state_dir)
    if not settings.key_path.exists():
        raise _fail(
            f"no hub signing key at {settings.key_path}; run "
            f"`linksight hub init --state-dir {settings.state_dir} --admin NAME` "
            "first"
        )
    try:
        key = load_or_create_private_key(settings.key_path)
    except (SignatureError, ValueError) as exc:
        raise _fail(
            f"cannot read the hub signing key {settings.key_path}: {exc}"
        ) from exc
    typer.echo(public_key_text(key))
