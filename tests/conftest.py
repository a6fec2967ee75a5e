"""Shared fixtures. Tests run against the real data mirror (../shared/data) where it exists."""

import json
import os
from pathlib import Path

import pytest

os.environ.setdefault("MPLBACKEND", "Agg")
# Tests never read or fill the machine-wide oracle cache (~/.cache/matdisco): one fresh cache per session, shared by
# the experiment notebooks the tests execute (they inherit the environment).
import tempfile  # noqa: E402

os.environ["MATDISCO_CACHE"] = tempfile.mkdtemp(prefix="matdisco-test-cache-")

from matdisco.data import mirror_dir  # noqa: E402

from matdisco.core import project_root

ROOT = project_root()


def pytest_collection_modifyitems(config, items):
    if os.environ.get("MATDISCO_SLOW") == "1":
        return
    skip = pytest.mark.skip(reason="slow: set MATDISCO_SLOW=1 to run")
    for it in items:
        if "slow" in it.keywords:
            it.add_marker(skip)


@pytest.fixture(scope="session")
def mirror() -> Path:
    m = mirror_dir()
    if m is None or not (m / "mp2018_formation").exists():
        pytest.skip("no data mirror (set MATDISCO_MIRROR) and no network in tests")
    return m


@pytest.fixture(scope="session")
def mp_index(mirror):
    from matdisco.data import read_index

    return read_index()


def _refuse_non_standard_json(constant: str):
    "`json.loads`' hook for NaN and Infinity, which strict JSON (RFC 8259) has not."
    raise ValueError(f"non-standard JSON: {constant}")


@pytest.fixture
def read_strict_json():
    "A reader of JSON files that refuses NaN and Infinity: what `core.write_json` promises, and `jq` demands."

    def read(path: Path):
        return json.loads(Path(path).read_text(), parse_constant=_refuse_non_standard_json)

    return read
