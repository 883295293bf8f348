import json
import shutil

import minidata
import yaml
from helpers import invoke_cli, run_cli, run_config

from ftcot.tasks import load_task


def _config(tmp_path, data_dir, tiny_lm, **evaluate):
    return run_config(
        tmp_path,
        data_dir,
        as_file=True,
        run_dir=str(tmp_path / "runs" / "tiny"),
        teacher={"backend": "recorded", "teach_on": ["train", "test"], "max_questions": 40},
        student={"model": str(tiny_lm)},
        train={"epochs": 2, "batch_size": 8, "learning_rate": 0.001},
        evaluate={
            "baselines": ["zero_shot", "zero_shot_cot", "few_shot_cot"],
            "max_questions": 8,
            "max_new_tokens": 16,
            **evaluate,
        },
    )


def test_run_then_rerun_skips_finished_stages_and_reruns_what_changed(tmp_path, data_dir, tiny_lm):
    config = _config(tmp_path, data_dir, tiny_lm)
    result = run_cli("run", config)
    assert result.returncode == 0, result.stderr[-3000:]
    run = tmp_path / "runs" / "tiny"
    for path in (
        "config.yaml",
        "environment.json",
        "timings.json",
        "teacher/completions.jsonl",
        "curate/train_ft_cot.jsonl",
        "curate/val.jsonl",
        "students/ft_cot/best/model.safetensors",
        "students/vanilla/summary.json",
        "eval/ft_cot/predictions.jsonl",
        "eval/teacher/metrics.json",
        "report.md",
        "report.csv",
        "accuracy_vs_epoch.png",
    ):
        assert (run / path).exists(), path
    report_md = (run / "report.md").read_text()
    assert "## Failure diagnostics" in report_md and "| coin_flip | Fine-tune-CoT:" in report_md
    metrics = json.loads((run / "eval" / "ft_cot" / "metrics.json").read_text())
    assert metrics["diagnostics"]["marker"] == "-->" and metrics["max_new_tokens"] == 16
    assert json.loads((run / "students" / "ft_cot" / "summary.json").read_text())["stop_reason"] == "completed"
    table = result.stdout
    for label in (
        "Teacher (zero-shot-CoT): text-davinci-002",
        "Zero-shot:",
        "Zero-shot-CoT:",
        "Few-shot-CoT:",
        "Vanilla fine-tuning:",
        "Fine-tune-CoT:",
    ):
        assert label in table
    teacher = json.loads((run / "eval" / "teacher" / "metrics.json").read_text())
    test_ids = [s.sample_index for s in load_task("coin_flip", data_dir).split_samples("test")[:8]]
    logged = {
        json.loads(line)["sample_index"]: json.loads(line)
        for line in (data_dir / "teacher/text-davinci-002__zs_cot/coin_flip.jsonl").open()
    }
    assert teacher["n"] == 8 and teacher["correct"] == sum(
        logged[i]["gold"] == logged[i]["log_prediction"] for i in test_ids
    )
    predictions = [json.loads(line) for line in (run / "eval" / "ft_cot" / "predictions.jsonl").open()]
    assert len(predictions) == 8 and all(p["prompt"].endswith(" ###") for p in predictions)
    curated = json.loads((run / "curate" / "summary.json").read_text())
    train = minidata.counts("coin_flip")[1]
    assert curated["val_questions"] == round(0.1 * train) and curated["kept"] + sum(curated["removed"].values()) <= 40

    again = run_cli("run", config)
    assert again.returncode == 0
    assert "teach: done already" in again.stderr and "curate: done already" in again.stderr
    assert "train ft_cot: done already" in again.stderr and "evaluate" not in again.stderr

    changed = _config(tmp_path, data_dir, tiny_lm, max_questions=6)
    third = run_cli("run", changed)
    assert third.returncode == 0
    assert "train ft_cot: done already" in third.stderr and "evaluate ft_cot:" in third.stderr
    assert json.loads((run / "eval" / "ft_cot" / "metrics.json").read_text())["n"] == 6

    # The report over several runs: a copy of this run with D=2 gives the accuracy-against-D plot.
    other = tmp_path / "runs" / "tiny_d2"
    shutil.copytree(run, other)
    cfg = yaml.safe_load((other / "config.yaml").read_text())
    cfg["teacher"]["num_samples"] = 2
    (other / "config.yaml").write_text(yaml.safe_dump(cfg))
    report = run_cli("report", tmp_path / "runs")
    assert report.returncode == 0, report.stderr
    assert (tmp_path / "runs" / "accuracy_vs_D.png").exists()
    assert "Fine-tune-CoT, D=2:" in report.stdout


def test_bad_config_values_are_one_line_errors(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("task: coin_flip\ntrain:\n  epochz: 3\n")
    result = invoke_cli("run", bad)
    assert result.returncode == 2 and result.stderr.strip() == f"error: {bad}: train.epochz: unknown key"
    bad.write_text("task: coin_flip\ntrain:\n  epochs: 0\n")
    result = invoke_cli("train", bad)
    assert result.returncode == 2 and "train.epochs: Input should be greater than or equal to 1" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    result = invoke_cli("report", tmp_path)
    assert result.returncode == 2 and "no evaluated runs under" in result.stderr


def test_a_stage_run_alone_counts_as_done_for_a_whole_run(tmp_path, data_dir, tiny_lm):
    """Every stage's summary is written in one place with its fingerprint, so `ftcot teach` and `ftcot curate`
    followed by `ftcot run` do not redo them; a teacher stopped by its budget is never done."""
    from ftcot.artifacts import TeachSummary
    from ftcot.config import load_config
    from ftcot.pipeline import context, finish, is_done

    config = _config(tmp_path, data_dir, tiny_lm)
    for stage in ("teach", "curate"):
        assert run_cli(stage, config).returncode == 0
    ctx = context(load_config(config))
    assert is_done(ctx, "teach") and is_done(ctx, "curate") and not is_done(ctx, "train", "ft_cot")
    before = ctx.run.summary("teach").stat().st_mtime_ns
    result = run_cli("run", config)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "teach: done already" in result.stderr and "curate: done already" in result.stderr
    assert ctx.run.summary("teach").stat().st_mtime_ns == before
    stopped = json.loads(ctx.run.summary("teach").read_text()) | {"stopped_by_budget": True}
    finish(ctx, "teach", TeachSummary.model_validate(stopped))
    assert not is_done(ctx, "teach")


def test_operational_keys_rerun_nothing(data_dir, tmp_path):
    """How a stage runs (concurrency, rate limits, prices, which methods and baselines are on the list) is not
    what it produced: changing it keeps every finished stage's fingerprint."""
    from ftcot.config import RunConfig
    from ftcot.pipeline import STAGES, context, fingerprint

    base = {"task": "coin_flip", "run_dir": str(tmp_path / "run"), "data_dir": str(data_dir)}
    one = context(RunConfig.model_validate(base))
    other = context(
        RunConfig.model_validate(
            base
            | {
                "teacher": {"concurrency": 4, "requests_per_minute": 100, "max_cost": 1.0, "timeout_s": 5},
                "train": {"methods": ["ft_cot"], "report_to": ["tensorboard"], "checkpoint": False},
                "evaluate": {"baselines": ["zero_shot"], "batch_size": 3},
            }
        )
    )
    assert all(fingerprint(one, stage) == fingerprint(other, stage) for stage in STAGES)
    changed = context(RunConfig.model_validate(base | {"train": {"epochs": 7}}))
    assert fingerprint(one, "curate") == fingerprint(changed, "curate")
    assert fingerprint(one, "train") != fingerprint(changed, "train")


def test_two_processes_writing_one_file_never_trip_over_each_other(tmp_path):
    """Stages run side by side each rewrite config.yaml: every write is whole, and none fails."""
    import threading

    from ftcot.files import write_text

    target, errors = tmp_path / "config.yaml", []

    def writer(text):
        try:
            for _ in range(300):
                write_text(target, text)
        except Exception as exc:  # noqa: BLE001 (any failure is the finding)
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(letter * 5000,)) for letter in "ab"]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and target.read_text() in ("a" * 5000, "b" * 5000)
    assert not list(tmp_path.glob("*.part"))
