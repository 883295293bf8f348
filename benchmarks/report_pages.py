"""Browsable pages of committed runs: each (task, setting) whose test predictions are committed
(results/<task>/<setting>.predictions/) is rebuilt as a run folder, with no model: the recorded teacher
replayed and curated under that result's own config (the curation before issue #18 for the settings named
without -q), its committed predictions and metrics; `ftcot report` then writes its page, copied to
results/<task>/<setting>.html. Prints each page's size and how long headless Chromium takes to open it.

    FTCOT_DATA_DIR=../shared/data .venv/bin/python benchmarks/report_pages.py --tasks coin_flip strategy_qa
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from ftcot.artifacts import SCHEMA_VERSION, Metrics  # noqa: E402
from ftcot.config import RunConfig  # noqa: E402
from ftcot.pipeline import context  # noqa: E402
from ftcot.report import report  # noqa: E402
from ftcot.stages.curate import run as curate_stage  # noqa: E402
from ftcot.stages.teach import run as teach  # noqa: E402


def rebuild(result: dict, predictions: Path, run: Path) -> Path:
    """A run folder with the result's teacher, curation, predictions and metrics; its report.html."""
    cfg = json.loads(json.dumps(result["config"]))
    cfg["run_dir"] = str(run)
    if "-q" not in result["setting"].split("-"):  # curated as before #18
        cfg["curate"] |= {"choice_order": "teacher", "drop_truncated": False}
    shutil.rmtree(run, ignore_errors=True)
    ctx = context(RunConfig.model_validate(cfg))
    teach(ctx)
    curate_stage(ctx)
    for path in sorted(predictions.glob("*.jsonl")):
        method = path.stem
        if method not in result["accuracy"]:  # the calculator's outputs (ft_cot.calculator.jsonl): not a method
            continue
        (run / "eval" / method).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, run / "eval" / method / "predictions.jsonl")
        # The committed result's numbers as a metrics file (no fingerprint: no stage made it).
        n, accuracy = result["n_test"], result["accuracy"][method]
        metrics = Metrics(
            task=result["task"],
            method=method,
            n=n,
            correct=round(accuracy * n / 100),  # accuracy is 100 * correct / n to two decimals
            accuracy=accuracy,
            ci95=result["ci95"][method],
            model=cfg["student"]["model"],
            **({"diagnostics": result["diagnostics"][method]} if method in result.get("diagnostics", {}) else {}),
            schema_version=SCHEMA_VERSION,
        )
        (run / "eval" / method / "metrics.json").write_text(json.dumps(metrics.dump()))
    return report(run)["html"]


def opening_time(page: Path) -> float | None:
    """Seconds for headless Chromium to load the page and run its script (None without Chromium)."""
    browser = shutil.which("chromium")
    if browser is None:
        return None
    start = time.perf_counter()
    subprocess.run(
        [browser, "--headless=new", "--no-sandbox", "--disable-gpu", "--dump-dom", page.as_uri()],
        capture_output=True,
        check=True,
    )
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", nargs="+", required=True)
    parser.add_argument("--results", type=Path, default=ROOT / "results")
    parser.add_argument("--runs", type=Path, default=ROOT / "runs" / "pages")
    args = parser.parse_args()
    for task in args.tasks:
        for predictions in sorted((args.results / task).glob("*.predictions")):
            setting = predictions.name.removesuffix(".predictions")
            result = json.loads((args.results / task / f"{setting}.json").read_text())
            page = rebuild(result, predictions, args.runs / task / setting)
            out = args.results / task / f"{setting}.html"
            shutil.copy(page, out)
            seconds = opening_time(out.resolve())
            opened = f", opens in {seconds:.2f} s in headless Chromium" if seconds is not None else ""
            print(f"{out}: {out.stat().st_size / 1e6:.2f} MB{opened}", flush=True)


if __name__ == "__main__":
    main()
