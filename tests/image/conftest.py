"""The image, built from the Dockerfile, run with podman against the real PostgreSQL, LocalStack and
KeeperHub stand-in of the test suite.

These tests need the image: ``make test-image`` (scripts/test-image.sh) builds it, then runs them
with ``KHS_IMAGE`` naming it and podman's private settings in the environment. ``make test`` runs
that step after the rest of the suite; the default pytest run does not collect this folder
(``norecursedirs`` in pyproject.toml).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.image.podman import Podman, podman

IMAGE_VARIABLE = "KHS_IMAGE"
LOGS = Path(__file__).resolve().parents[2] / ".cache" / "image" / "logs"


@pytest.fixture(scope="session")
def image() -> str:
    name = os.environ.get(IMAGE_VARIABLE)
    if not name:
        pytest.fail(
            f"{IMAGE_VARIABLE} is not set: run `make test-image`, which builds the image and "
            "then runs these tests against it",
            pytrace=False,
        )
    found = podman("image", "exists", name)
    if found.returncode != 0:
        pytest.fail(f"podman has no image {name}: run `make test-image`", pytrace=False)
    return name


@pytest.fixture(scope="session")
def log_dir() -> Path:
    """Every container's output is kept here after the run (the failures name the file)."""
    shutil.rmtree(LOGS, ignore_errors=True)
    LOGS.mkdir(parents=True)
    return LOGS


@pytest.fixture(scope="module")
def containers(image: str, log_dir: Path) -> Iterator[Podman]:
    runner = Podman(image, log_dir)
    try:
        yield runner
    finally:
        runner.remove_all()
