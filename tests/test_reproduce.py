"""benchmarks/reproduce.py without training: its run configs, setting names and the results document."""

import importlib.util
import json
from pathlib import Path

import pytest

from ftcot.config import RunConfig

_spec = importlib.util.spec_from_file_location("reproduce", Path(__file__).parents[1] / "benchmarks" / "reproduce.py")
reproduce = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(reproduce)

PAPER = ["--protocol", "paper", "--max-examples", "0", "--max-minutes", "8"]
NEW = ["--consistency", "on", "--permute-choices", "3"]


def runs(argv: list[str]) -> dict[tuple[str, int], object]:
    """The invocation's runs by (task, seed)."""
    return {(task, run.seed): run for task, run in reproduce.seed_runs(reproduce.parse_args(argv))}


@pytest.mark.parametrize(
    "flags",
    [[], NEW, NEW + ["--choice-order", "teacher", "--choice-by-content"], ["--consistency", "off", "--seeds", "2"]],
)
def test_every_run_config_validates(flags):
    for (task, seed), run in runs(PAPER + flags).items():
        cfg = RunConfig.model_validate(reproduce.config_for(task, run))
        assert (cfg.train.seed, cfg.curate.permute_seed, cfg.curate.seed) == (seed, seed, 0)


def test_curation_flags_reach_the_config_and_choice_flags_only_the_choice_tasks():
    new = runs(PAPER + NEW + ["--choice-by-content", "--tasks", "date_understanding", "coin_flip"])
    date, coin = (
        RunConfig.model_validate(reproduce.config_for(task, new[task, 0]))
        for task in ("date_understanding", "coin_flip")
    )
    assert (date.curate.consistency, date.curate.permute_choices, date.evaluate.choice_by_content) == (True, 3, True)
    assert (coin.curate.consistency, coin.curate.permute_choices, coin.evaluate.choice_by_content) == (True, 0, False)
    before = reproduce.config_for("coin_flip", runs(PAPER)["coin_flip", 0])
    assert "consistency" not in before["curate"]  # the config's own default applies


def test_settings_tell_before_after_and_seeds_apart_and_the_old_curation_keeps_its_name():
    old = ["--choice-order", "teacher", "--keep-truncated"]  # the curation before issue #18
    before, after = runs(PAPER + old + ["--seeds", "3"]), runs(PAPER + NEW + ["--seeds", "3"])
    assert reproduce.setting(before["coin_flip", 0]) == "paper-full-nall-tauto-m8"
    assert reproduce.setting(runs(PAPER)["coin_flip", 0]) == "paper-full-nall-tauto-m8-q"  # today's defaults
    assert reproduce.setting(after["coin_flip", 2]) == "paper-full-nall-tauto-m8-q-c1-k3-s2"
    teacher_order = runs(PAPER + NEW + ["--choice-order", "teacher", "--choice-by-content"])
    assert reproduce.setting(teacher_order["coin_flip", 0]) == "paper-full-nall-tauto-m8-q-c1-k3-oteacher-bc"
    names = {reproduce.setting(r) for r in [*before.values(), *after.values()]}
    assert len(names) == 6
    assert {reproduce.seeds_of(n) for n in names} == {"paper-full-nall-tauto-m8", "paper-full-nall-tauto-m8-q-c1-k3"}
    gemma = runs(PAPER + NEW + ["--student", "gemma3-270m", "--seeds", "2"])  # the second student names itself
    assert reproduce.setting(gemma["coin_flip", 1]) == "paper-full-nall-tauto-m8-q-c1-k3-gemma3-270m-s1"
    assert reproduce.config_for("coin_flip", gemma["coin_flip", 0])["student"]["model"] == "gemma3-270m"


def result(setting: str, ft_cot: float, vanilla: float, val: float, **extra) -> dict:
    student = {
        "best_epoch": 1,
        "best_val_accuracy": val,
        "examples": 10,
        "tokens_per_epoch": 1000,
        "epochs": 20,
        "epochs_trained": 2,
        "stop_reason": None,
        "wall_s": 60,
        "tokens_per_s": 100,
        "history": [],
    }
    return {
        "task": "date_understanding",
        "setting": setting,
        "command": "reproduce.py",
        "n_test": 111,
        "accuracy": {"ft_cot": ft_cot, "vanilla": vanilla, "zero_shot": 1.0, "zero_shot_cot": 2.0, "teacher": 65.0},
        "train": {"ft_cot": student, "vanilla": {**student, "best_val_accuracy": 10.0}},
        "curate": {"kept": 10, "removed": {"incorrect": 2}},
        "timings_s": {},
        "max_new_tokens": 188,
        "machine": "one NVIDIA H200 GPU, bf16 autocast, torch 2, transformers 5",
        **extra,
    }


def test_results_doc_shows_the_mean_and_sd_over_seeds_and_the_failures(tmp_path, monkeypatch):
    monkeypatch.setattr(reproduce, "ROOT", tmp_path)
    monkeypatch.setattr(reproduce, "RESULTS", tmp_path / "results")
    monkeypatch.setattr(reproduce, "WRITEUPS", tmp_path / "docs" / "results")
    task_dir = tmp_path / "results" / "date_understanding"
    task_dir.mkdir(parents=True)
    (tmp_path / "docs").mkdir()
    failures = {"ft_cot": {"kinds": {"no answer": 5, "wrong option": 30}, "loops": 4, "n_wrong": 35}}
    seeds = [
        result("paper-c1-k3", 40.0, 30.0, 20.0),  # seed 1 is best on validation, not on test
        result("paper-c1-k3-s1", 50.0, 30.0, 30.0, failures=failures, choice_by_content={"ft_cot": {"accuracy": 55.0}}),
        result("paper-c1-k3-s2", 60.0, 33.0, 25.0),
        result("paper", 70.0, 20.0, 5.0),
    ]
    for r in seeds:
        (task_dir / f"{r['setting']}.json").write_text(json.dumps(r))
    reproduce.write_results_doc()
    row = next(
        line
        for line in (tmp_path / "docs" / "RESULTS.md").read_text().splitlines()
        if line.startswith("| date_understanding | 67.58")
    )
    assert "| 50.00 | 30.00 | 50.00 ± 10.00 (3 seeds) | 31.00 ± 1.73 (3 seeds) |" in row
    assert "paper-c1-k3-s1" in row
    text = (tmp_path / "docs" / "RESULTS.md").read_text()
    # the failure taxonomy and the answers by content, of the one run that recorded them
    assert (
        "| date_understanding | paper-c1-k3-s1 | ft_cot | 50.00 | 55.00 | 35 | 4 | wrong option 30, no answer 5 |"
        in text
    )
    assert "| paper-c1-k3-s2 | ft_cot |" not in text


def test_a_cached_setting_is_read_from_results_and_skipped(tmp_path, monkeypatch, capsys):
    """A run's artifacts live in the top-level results/<task>/ (the write-ups in docs/results/): a setting cached
    there is not run again, and the document is written from it."""
    assert reproduce.RESULTS == reproduce.ROOT / "results"
    assert reproduce.WRITEUPS == reproduce.ROOT / "docs" / "results"
    monkeypatch.setattr(reproduce, "ROOT", tmp_path)
    monkeypatch.setattr(reproduce, "RESULTS", tmp_path / "results")
    monkeypatch.setattr(reproduce, "WRITEUPS", tmp_path / "docs" / "results")
    (tmp_path / "docs").mkdir()
    flags = PAPER + ["--tasks", "date_understanding"]
    name = reproduce.setting(runs(flags)["date_understanding", 0])
    (tmp_path / "results" / "date_understanding").mkdir(parents=True)
    (tmp_path / "results" / "date_understanding" / f"{name}.json").write_text(
        json.dumps(result(name, 40.0, 30.0, 20.0))
    )

    def trained(*args):
        raise AssertionError("a cached setting was run again")

    monkeypatch.setattr(reproduce, "run_task", trained)
    monkeypatch.setattr("sys.argv", ["reproduce.py", *flags])
    reproduce.main()
    assert f"date_understanding: cached in results/date_understanding/{name}.json" in capsys.readouterr().out
    assert f"| {name} |" in (tmp_path / "docs" / "RESULTS.md").read_text()


def test_the_notes_links_are_rebased_from_docs_results_to_docs():
    notes = "[a](curation.md), [b](../../results/coin_flip/x.html), [c](#notes), [d](https://x.org/a)"
    assert reproduce.rebased(notes, "results/") == (
        "[a](results/curation.md), [b](../results/coin_flip/x.html), [c](#notes), [d](https://x.org/a)"
    )


def test_docs_results_md_is_what_reproduce_writes_from_the_committed_results(tmp_path, monkeypatch):
    """docs/RESULTS.md is generated (`reproduce.py --doc-only`): committed results, notes or write-ups changed
    without regenerating it show here."""
    committed = (reproduce.ROOT / "docs" / "RESULTS.md").read_text()
    monkeypatch.setattr(reproduce, "ROOT", tmp_path)
    monkeypatch.setattr(reproduce, "plot_diverse", lambda by_task, path: True)  # the committed plot stays as it is
    (tmp_path / "docs").mkdir()
    reproduce.write_results_doc()
    assert (tmp_path / "docs" / "RESULTS.md").read_text() == committed, (
        "docs/RESULTS.md is out of date: run `.venv/bin/python benchmarks/reproduce.py --doc-only`"
    )


def test_a_teacher_d_and_the_calculator_name_their_settings_and_reach_the_config():
    """Another recorded teacher and D name themselves (text-davinci-002 at D=1 keeps its names); several sources
    become teacher.records; --calculator applies to the number tasks only; --epochs bounds the paper protocol."""
    flags = PAPER + ["--epochs", "3", "--consistency", "on"]
    diverse = runs(
        flags + ["--teacher", "gpt-3.5-turbo-instruct", "--num-samples", "6", "--tasks", "date_understanding"]
    )["date_understanding", 0]
    assert reproduce.setting(diverse) == "paper-full-nall-tauto-m8-e3-q-c1-gpt-3.5-turbo-instruct-d6"
    cfg = RunConfig.model_validate(reproduce.config_for("date_understanding", diverse))
    assert (cfg.teacher.model, cfg.teacher.num_samples, cfg.teacher.records, cfg.train.epochs) == (
        "gpt-3.5-turbo-instruct",
        6,
        None,
        3,
    )
    both = runs(
        flags
        + [
            "--teacher",
            "text-davinci-002+gpt-3.5-turbo-instruct",
            "--num-samples",
            "7",
            "--tasks",
            "date_understanding",
        ]
    )["date_understanding", 0]
    assert RunConfig.model_validate(reproduce.config_for("date_understanding", both)).teacher.records == [
        "text-davinci-002",
        "gpt-3.5-turbo-instruct",
    ]
    calc = runs(flags + ["--calculator", "--tasks", "single_eq", "coin_flip"])
    assert reproduce.setting(calc["single_eq", 0]) == "paper-full-nall-tauto-m8-e3-q-c1-calc"
    assert RunConfig.model_validate(reproduce.config_for("single_eq", calc["single_eq", 0])).evaluate.calculator
    assert not RunConfig.model_validate(reproduce.config_for("coin_flip", calc["coin_flip", 0])).evaluate.calculator
    assert reproduce.teacher_of({"config": reproduce.config_for("date_understanding", both)}) == (
        "text-davinci-002+gpt-3.5-turbo-instruct",
        7,
    )


def test_the_d_gain_pairs_the_test_questions_and_averages_the_seeds(tmp_path, monkeypatch):
    """D=6's two seeds against D=1's one, on the same four questions: the gain is the mean of the per-question
    differences, its interval is the same each time, and a run without committed predictions is left out."""
    monkeypatch.setattr(reproduce, "RESULTS", tmp_path)
    task = "last_letter_concatenation"
    correct = {"e3-d1": [1, 0, 0, 0], "e3-d6": [1, 1, 0, 0], "e3-d6-s1": [1, 1, 1, 0], "e3-d4": None}
    runs = []
    for setting, marks in correct.items():
        d = int(setting.split("-d")[1].split("-")[0])
        runs.append({"setting": setting, "config": {"teacher": {"model": "gpt-3.5-turbo-instruct", "num_samples": d}}})
        if marks is not None:
            folder = tmp_path / task / f"{setting}.predictions"
            folder.mkdir(parents=True)
            rows = [{"sample_index": i, "correct": bool(m)} for i, m in reversed(list(enumerate(marks)))]
            (folder / "ft_cot.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    by_task = {t: [] for t in reproduce.TASKS} | {task: runs}
    table = reproduce.d_gain_markdown(by_task)
    assert table == reproduce.d_gain_markdown(by_task)
    [row] = [line for line in table.splitlines() if line.startswith(f"| {task}")]
    assert row.startswith(f"| {task} | `gpt-3.5-turbo-instruct` | D=6 | 2 | 1 | 62.50 | 25.00 | +37.50 | ")
    assert row.endswith(" | 4 |")
