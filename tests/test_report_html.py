"""report.html in a real browser: headless Chromium (Debian's `chromium`; .ci/run installs it) loads the page of a
run folder written in the test and the test reads the DOM it rendered: the table's numbers, a question's text,
filters set through the page's own controls, an injected `<script>` that stays text, nothing fetched."""

import json
import os
import re
import shutil
import subprocess

import pytest
import yaml
from helpers import run_cli

from ftcot.artifacts import SCHEMA_VERSION, Metrics
from ftcot.config import RunConfig
from ftcot.files import write_jsonl
from ftcot.teachers.records import TeacherCompletion, write_records

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
if CHROMIUM is None and os.environ.get("CI") != "true":  # CI must have it: there a missing browser fails
    pytest.skip("no chromium here (apt-get install chromium)", allow_module_level=True)

EVIL = '<script>document.title="pwned"</script><img src=x onerror="document.title=\'pwned\'">'


def _run(root, questions: int = 12):
    """A Coin Flip run folder as the stages leave it: config, teacher records, curation fates, two methods'
    predictions and metrics. Question 3's rationale carries an injection."""
    run = root / "runs" / "coin"
    cfg = RunConfig(task="coin_flip", run_dir=str(run))
    for method in ("ft_cot", "vanilla"):
        (run / "eval" / method).mkdir(parents=True)
    (run / "config.yaml").write_text(yaml.safe_dump(cfg.model_dump()))
    records, fates = [], []
    for i in range(questions):
        rationale = EVIL if i == 3 else f" The coin is flipped {i} times, so it is {'heads' if i % 2 else 'tails'} up."
        records.append(
            TeacherCompletion(
                task="coin_flip",
                sample_index=i,
                question=f"Is coin {i} still heads up?",
                answer="yes" if i % 2 else "no",
                reasoning_prompt="p",
                reasoning_completion=rationale,
                answer_prompt="p2",
                answer_completion=" yes." if i % 3 else " no.",
                model="m",
            )
        )
        fates.append({"sample_index": i, "fates": {"0": "kept" if i % 3 else "incorrect"}})
    write_records(records, run / "teacher" / "completions.jsonl")
    write_jsonl(fates, run / "curate" / "per_question.jsonl")
    for method, right in (("ft_cot", lambda i: i % 4 != 1), ("vanilla", lambda i: i % 2 == 0)):
        rows = []
        for i in range(questions):
            gold = "yes" if i % 2 else "no"
            said = gold if right(i) else ("no" if gold == "yes" else "yes")
            output = (EVIL if i == 3 else f" Coin {i} is flipped.") + f" --> {said}" if method == "ft_cot" else said
            rows.append(
                {
                    "sample_index": i,
                    "question": f"Is coin {i} still heads up?",
                    "prompt": f"Is coin {i} still heads up? ###",
                    "output": output,
                    "prediction": said,
                    "answer": gold,
                    "correct": said == gold,
                    "failure": None if said == gold else "wrong_conclusion" if method == "ft_cot" else "wrong_answer",
                }
            )
        rows[3]["output"] += " \ud800"  # a lone surrogate, as JSON can carry it
        (run / "eval" / method / "predictions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        correct = sum(r["correct"] for r in rows)
        metrics = Metrics(
            task="coin_flip",
            method=method,
            n=questions,
            correct=correct,
            accuracy=round(100 * correct / questions, 2),
            ci95=[1.5, 99.5],
            model="tiny",
            schema_version=SCHEMA_VERSION,
        )
        (run / "eval" / method / "metrics.json").write_text(json.dumps(metrics.dump()))
    return root / "runs"


def _dom(page, fragment: str = "") -> str:
    """The DOM after the page's scripts ran, as Chromium serializes it."""
    result = subprocess.run(
        [
            CHROMIUM,
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--virtual-time-budget=5000",
            "--dump-dom",
            page.resolve().as_uri() + fragment,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0 and "</html>" in result.stdout, result.stderr[-2000:]
    return result.stdout


def _cards(dom: str) -> list[str]:
    return re.findall(r'<div class="q" data-id="(\d+)">', dom.split('id="cards"')[1].split("</section>")[0])


def test_the_page_shows_the_table_and_every_question_and_its_filters_work(tmp_path):
    root = _run(tmp_path)
    result = run_cli("report", root, "--open")
    assert result.returncode == 0, result.stderr
    page = root / "report.html"
    assert result.stdout.strip().endswith(str(page.resolve()))
    dom = _dom(page)
    assert "<title>ftcot report</title>" in dom  # the injected script did not run
    assert re.search(r"Fine-tune-CoT: tiny</th><td>75\.00 <small>\[1\.5, 99\.5\]", dom)
    assert "Is coin 7 still heads up?" in dom and _cards(dom) == [str(i) for i in range(12)]
    assert "12 of 12 questions" in dom
    wrong = _dom(page, "#show=wrong")  # the page's own control, set as a reader would
    assert _cards(wrong) == ["1", "5", "9"] and "3 of 12 questions" in wrong
    searched = _dom(page, "#method=vanilla&show=right&search=coin%2010")
    assert _cards(searched) == ["10"]
    kind = _dom(page, "#method=vanilla&kind=wrong_answer")
    assert _cards(kind) == ["1", "3", "5", "7", "9", "11"]
    assert "sample 0: incorrect" in dom and "sample 0: kept" in dom  # the curated set, with each fate
    dropped = _dom(page, "#fate=incorrect")
    curated = re.findall(r'<div class="text">Is coin (\d+) still', dropped.split('id="curated"')[1])
    assert curated == ["0", "3", "6", "9"]


def test_model_text_is_shown_as_text_and_the_page_fetches_nothing(tmp_path):
    root = _run(tmp_path)
    assert run_cli("report", root).returncode == 0
    dom = _dom(root / "report.html")
    assert "<title>ftcot report</title>" in dom and "pwned" not in dom.split("<title>")[1].split("</title>")[0]
    assert '&lt;script&gt;document.title="pwned"&lt;/script&gt;' in dom  # shown, as text
    assert not re.search(r'<img[^>]*\bsrc="x"', dom) and not re.search(r"<[a-z]+[^<>]*\sonerror=", dom)
    external = re.findall(r'(?:src|href)="(?!data:|#)([^"]*)"', dom)
    assert external == []  # every image is inline data; no script, style or font from anywhere
    text = (root / "report.html").read_text()
    assert "<script src" not in text and "http://" not in text and "https://" not in text


def test_a_large_run_opens(tmp_path):
    """StrategyQA's size: 687 questions; the page renders the first page of cards and the count."""
    root = _run(tmp_path, questions=687)
    assert run_cli("report", root).returncode == 0
    dom = _dom(root / "report.html", "#show=wrong")
    assert "172 of 687 questions" in dom and len(_cards(dom)) == 50


def test_the_pages_of_committed_runs_are_rebuilt_in_a_smoke_run(tmp_path, data_dir):
    """benchmarks/report_pages.py on a committed-looking result (its config and predictions), no model."""
    import sys
    from pathlib import Path

    results = tmp_path / "results" / "coin_flip"
    (results / "s.predictions").mkdir(parents=True)
    rows = [
        {
            "sample_index": i,
            "question": f"Q{i}",
            "prompt": f"Q{i} ###",
            "output": " heads --> yes",
            "prediction": "yes",
            "answer": "yes",
            "correct": True,
            "failure": None,
        }
        for i in (300, 301)
    ]
    (results / "s.predictions" / "ft_cot.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    config = {
        "task": "coin_flip",
        "teacher": {"backend": "recorded", "teach_on": ["train", "test"]},
        "curate": {"val_fraction": 0.1, "seed": 0},
        "student": {"model": "tiny"},
    }
    (results / "s.json").write_text(
        json.dumps(
            {
                "task": "coin_flip",
                "setting": "s",
                "config": config,
                "n_test": 2,
                "accuracy": {"ft_cot": 100.0},
                "ci95": {"ft_cot": [34.2, 100.0]},
            }
        )
    )
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "report_pages.py"
    result = subprocess.run(
        [
            sys.executable,
            str(script),
            "--tasks",
            "coin_flip",
            "--results",
            str(tmp_path / "results"),
            "--runs",
            str(tmp_path / "runs"),
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "FTCOT_DATA_DIR": str(data_dir)},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    page = (results / "s.html").read_text()
    assert "100.00 <small>[34.2, 100.0]</small>" in page and "Q300" in page
