"""Where the golden upstream fixtures are: ``$TF2L_FIXTURES`` or ``../shared/upstream`` beside the repo.

Tests that need files written by upstream's own code call :func:`upstream_dir`. Where the fixtures are
absent (a user's own clone) those tests skip with a message saying so; under CI (``CI=true``) their absence
is a failure, so a CI run can never pass without having checked against upstream.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DEFAULT_ROOT = REPO.parent / "shared" / "upstream"


def fixtures_root() -> Path:
    """The folder holding ``<family>/`` fixture folders (it may not exist)."""
    return Path(os.environ.get("TF2L_FIXTURES", DEFAULT_ROOT))


def upstream_dir(family: str, *parts: str) -> Path:
    """``<root>/<family>/<parts…>``; skip (or fail under ``CI=true``) when it is absent."""
    path = fixtures_root().joinpath(family, *parts)
    if not path.exists():
        message = f"upstream fixtures not found: {path} (set TF2L_FIXTURES or place them at {DEFAULT_ROOT})"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message + "; CI requires them")
        pytest.skip(message)
    return path
