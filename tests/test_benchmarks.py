"""The benchmarks in a smoke mode (a tiny student, a few questions), so that a refactor cannot break one unseen."""

import os
import subprocess
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def test_throughput_runs_in_its_smoke_mode(tmp_path, data_dir, tiny_lm):
    out = tmp_path / "benchmarks.md"
    result = subprocess.run([sys.executable, str(BENCHMARKS / "throughput.py"), "--model", str(tiny_lm),
                             "--train-examples", "8", "--eval-questions", "4", "--max-new-tokens", "8",
                             "--out", str(out)], capture_output=True, text=True, timeout=600,
                            env={**os.environ, "FTCOT_DATA_DIR": str(data_dir)})
    assert result.returncode == 0, result.stderr[-3000:]
    section = out.read_text()
    assert "## Training and evaluation throughput" in section and "(a) training, useful tokens/s (8 " in section
