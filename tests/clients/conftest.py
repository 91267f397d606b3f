"""Fixtures for the R client: Rscript and the installed package."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPOSITORY = Path(__file__).resolve().parents[2]
R_PACKAGE = REPOSITORY / "clients" / "r"
R_DEBIAN_PACKAGES = (
    "r-base-core r-cran-httr2 r-cran-jsonlite r-cran-sodium r-cran-testthat "
    "r-cran-processx r-cran-callr r-cran-withr"
)


@pytest.fixture(scope="session")
def rscript() -> str:
    """The path of Rscript. Missing R fails the tests under CI and skips them
    elsewhere, with the command that installs it."""
    path = shutil.which("Rscript")
    if path is None:
        message = (
            "Rscript not found; install R and the client's packages with "
            f"apt-get install --no-install-recommends {R_DEBIAN_PACKAGES}"
        )
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture(scope="session")
def r_library(rscript, tmp_path_factory) -> Path:
    """A library directory with the R package of clients/r installed."""
    library = tmp_path_factory.mktemp("r-library")
    install = subprocess.run(
        [
            str(Path(rscript).with_name("R")),
            "CMD",
            "INSTALL",
            f"--library={library}",
            str(R_PACKAGE),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert install.returncode == 0, install.stdout + install.stderr
    return library


@pytest.fixture(scope="session")
def r_environment(r_library, tmp_path_factory) -> dict[str, str]:
    """The environment for an R process that uses the installed package, with
    its result key in a temporary folder instead of the user's home."""
    key_path = tmp_path_factory.mktemp("r-result-key") / "result.key"
    return dict(os.environ, R_LIBS=str(r_library), LINKSIGHT_RESULT_KEY=str(key_path))
