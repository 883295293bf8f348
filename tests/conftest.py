import os
import sys
from pathlib import Path

import pytest

# Tests read the project's shared, read-only data copy beside the checkout (never copied into the repo).
SHARED_DATA = Path(os.environ.get("FTCOT_TEST_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    assert (SHARED_DATA / "MANIFEST.tsv").is_file(), f"shared data not found at {SHARED_DATA}"
    return SHARED_DATA


def run_cli(*args, env=None):
    """Run the installed `ftcot` entry point in a subprocess, as a user would."""
    import subprocess

    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "ftcot.cli", *map(str, args)], capture_output=True, text=True,
                          env=full_env, timeout=120)
