"""`linksight station ...`: run a station, import its data, check its audit log."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, Any

import typer

from station.config import ConfigError, StationConfig, load_config

app = typer.Typer(help="Run a data station and manage its local datasets.")

ConfigOption = Annotated[
    Path, typer.Option("--config", "-c", help="Station config file (TOML).")
]


def _load(config_path: Path):
    try:
        return load_config(config_path)
    except ConfigError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from error


@app.command()
def serve(
    config: ConfigOption,
    log_level: Annotated[str, typer.Option(help="DEBUG, INFO or WARNING.")] = "INFO",
) -> None:
    """Poll the hub and run approved tasks until stopped (Ctrl-C)."""
    from station.daemon import StationDaemon

    logging.basicConfig(
        level=log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # httpx logs every request at INFO, one line per poll of the hub.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    station_config = _load(config)
    try:
        daemon = StationDaemon(station_config, config_path=Path(config))
    except ConfigError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from error
    daemon.install_signal_handlers()
    daemon.run()


@app.command("import")
def import_dataset(
    config: ConfigOption,
    dataset: Annotated[str, typer.Option(help="Dataset name from the config.")],
    csv_file: Annotated[Path, typer.Argument(help="CSV file to import.")],
) -> None:
    """Import a CSV file as the new version of a dataset, checked against its schema.

    A file that fails any check is rejected whole, with the line, the column
    and the reason, and the version imported before stays in use.
    """
    from station.importer import CsvImportError, import_csv
    from station.store import DatasetStore

    station_config = _load(config)
    try:
        schema = station_config.schema(dataset)
    except (ConfigError, ValueError) as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from error
    store = DatasetStore(station_config.station.state_dir)
    try:
        report = import_csv(store, csv_file, schema)
    except (CsvImportError, OSError, ValueError) as error:
        # The reason may quote a record's value, so the audit log has none.
        _audit_import(station_config, dataset, csv_file, "rejected")
        typer.echo(f"error: import of {csv_file} rejected: {error}", err=True)
        current = store.current(dataset)
        if current is not None:
            typer.echo(
                f"dataset {dataset!r} version {current.version} stays in use",
                err=True,
            )
        raise typer.Exit(1) from error
    _audit_import(
        station_config,
        dataset,
        csv_file,
        "success",
        version=report.version,
        rows=report.rows,
    )
    typer.echo(f"imported {report.rows} rows into {dataset!r} version {report.version}")


def _audit_import(
    station_config: StationConfig,
    dataset: str,
    csv_file: Path,
    outcome: str,
    version: int | None = None,
    rows: int | None = None,
) -> None:
    """Record an import in the station's audit log: who, which file, what came of it."""
    import getpass
    import hashlib

    from station.ledger import StationLedger

    objects: dict[str, Any] = {"dataset": dataset, "file": csv_file.name}
    if version is not None:
        objects["version"] = version
    details: dict[str, Any] = {}
    if csv_file.is_file():
        details["sha256"] = hashlib.sha256(csv_file.read_bytes()).hexdigest()
    if rows is not None:
        details["rows"] = rows
    ledger = StationLedger(station_config.station.state_dir)
    ledger.audit.append(
        "dataset_imported",
        organisation=station_config.station.organisation,
        user=getpass.getuser(),
        role="operator",
        purpose="dataset import",
        outcome=outcome,
        objects=objects,
        details=details,
    )


@app.command()
def csr(
    config: ConfigOption,
    out: Annotated[Path, typer.Option(help="Where to write the request (PEM).")],
) -> None:
    """Create this station's MPC key (the key file of the mpc table) and a request.

    Send the request to the collaboration's CA operator (`linksight ca sign`)
    and put the certificate they return where the mpc table's certificate
    setting points.
    """
    from linksight.certificates import CertificateError, create_station_key

    station_config = _load(config)
    key_path = station_config.mpc.key
    if key_path is None:
        typer.echo('error: set key = "station.key" in [mpc] first', err=True)
        raise typer.Exit(2)
    try:
        request = create_station_key(key_path, station_config.station.name)
    except CertificateError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(1) from error
    out.write_bytes(request)
    typer.echo(f"created key {key_path} and request {out}")


@app.command("audit-verify")
def audit_verify(config: ConfigOption) -> None:
    """Verify this station's hash-chained audit log."""
    from station.ledger import StationLedger

    station_config = _load(config)
    report = StationLedger(station_config.station.state_dir).audit.verify()
    typer.echo(report.describe())
    if not report.ok:
        raise typer.Exit(1)


@app.command("rotate-audit-key")
def rotate_audit_key(config: ConfigOption) -> None:
    """Replace the key that signs this station's checkpoints of the hub's chain.

    Both the old and the new key sign the rotation, the hub registers the
    new key, and both chains record the rotation, so checkpoints signed
    before it still verify under the old key. Afterwards the hub rejects a
    checkpoint signed with the old key. The station may keep running.
    """
    from linksight.signing import SignatureError
    from station.checkpointer import rotate_audit_key as rotate
    from station.hub_client import HubError, StationHubClient
    from station.ledger import StationLedger

    station_config = _load(config)
    try:
        token = station_config.token()
    except ConfigError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from error
    hub = StationHubClient(
        station_config.station.hub_url,
        token,
        ca_certificate=station_config.station.hub_ca_certificate,
    )
    ledger = StationLedger(station_config.station.state_dir)
    try:
        signed = rotate(station_config, ledger, hub)
    except (HubError, SignatureError, OSError) as error:
        typer.echo(f"error: audit key not rotated: {error}", err=True)
        raise typer.Exit(1) from error
    finally:
        hub.close()
    rotation = signed.rotation
    typer.echo(
        f"audit key of {rotation.station} rotated: old {rotation.old_public_key}, "
        f"new {rotation.new_public_key}"
    )
