"""Shared fixtures: where the repository, ../shared and its speech set are.

Tests marked `e2e` need the virtual desktop of ../shared/harness; they are skipped, with the
reason, when Xvfb or the harness is missing (CI installs both, so they run there).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from model_fixtures import one_torch_thread

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_DIR = REPO_ROOT.parent / "shared"
DEV_SET_DIR = SHARED_DIR / "data" / "dev"
HARNESS_DIR = SHARED_DIR / "harness"


def e2e_skip_reason() -> str | None:
    """Why the X harness cannot run here, or None when it can."""
    if not (HARNESS_DIR / "desktop_session.sh").is_file():
        return f"desktop harness not found at {HARNESS_DIR}"
    if shutil.which("Xvfb") is None:
        return "Xvfb is not installed (run ../shared/harness/desktop_session.sh install)"
    return None


@pytest.fixture(scope="module")
def single_torch_thread() -> Iterator[None]:
    """Torch single-threaded for a whole test module (``pytestmark =
    pytest.mark.usefixtures("single_torch_thread")``); see :func:`one_torch_thread`."""
    with one_torch_thread():
        yield


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    reason = e2e_skip_reason()
    if reason is None:
        return
    skip = pytest.mark.skip(reason=reason)
    for item in items:
        if "e2e" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def repo_root() -> Path:
    """The repository checkout."""
    return REPO_ROOT


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """../shared beside the checkout (speech data, scorer, desktop harness)."""
    if not SHARED_DIR.is_dir():
        pytest.skip(f"{SHARED_DIR} is missing")
    return SHARED_DIR


@pytest.fixture(scope="session")
def dev_set_dir() -> Path:
    """../shared/data/dev: real 16 kHz speech WAVs with transcripts.tsv."""
    if not (DEV_SET_DIR / "transcripts.tsv").is_file():
        pytest.skip(f"speech set {DEV_SET_DIR} is missing")
    return DEV_SET_DIR
