"""Config keys that were renamed (config.Renamed): the old name still loads with a one-line note, and the
fingerprints that decide what reruns are the ones run folders made before the rename carry."""

import json
from pathlib import Path

import pytest
import yaml
from helpers import invoke_cli

from ftcot import config
from ftcot.config import RunConfig, load_config
from ftcot.errors import UserError
from ftcot.pipeline import context, fingerprint

QUICKSTART = Path(__file__).resolve().parents[1] / "configs" / "quickstart.yaml"
NOTE = "note: config key max_samples is now max_questions; the old name is read for now"


def _quickstart(tmp_path, data_dir, **sections) -> Path:
    config = yaml.safe_load(QUICKSTART.read_text()) | {"data_dir": str(data_dir), "run_dir": str(tmp_path / "run")}
    for name, keys in sections.items():
        config[name] = config.get(name, {}) | keys
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_old_names_load_with_one_note_and_mean_the_new_ones(tmp_path, data_dir, capsys, monkeypatch):
    monkeypatch.setattr(config, "said", set())  # as in a process of its own
    old = load_config(_quickstart(tmp_path, data_dir, teacher={"max_samples": 7}, evaluate={"max_samples": 5}))
    notes = capsys.readouterr().err.splitlines()
    assert notes == [NOTE]  # once, for both
    assert (old.teacher.max_questions, old.evaluate.max_questions) == (7, 5)
    new = load_config(_quickstart(tmp_path, data_dir, teacher={"max_questions": 7}, evaluate={"max_questions": 5}))
    assert capsys.readouterr().err == "" and new == old
    with pytest.raises(UserError, match="max_samples is the old name of max_questions: give max_questions alone"):
        load_config(_quickstart(tmp_path, data_dir, teacher={"max_samples": 7, "max_questions": 7}))


def test_fingerprints_are_those_of_folders_made_before_the_rename(tmp_path, data_dir):
    """Values computed by ftcot at 837d423, before the rename, for configs/quickstart.yaml: a run folder made then
    is complete now (a changed fingerprint would rerun every stage, training included)."""
    before = {
        (None, "teach"): "00fc34b20cb8cafa",
        (None, "evaluate"): "e4e0fc50d6339b30",
        ((7, 5), "teach"): "d4e1cfde25d21951",
        ((7, 5), "evaluate"): "b47ae7595ccda2d3",
    }
    for (limits, stage), value in before.items():
        keys = (
            {}
            if limits is None
            else {"teacher": {"max_questions": limits[0]}, "evaluate": {"max_questions": limits[1]}}
        )
        ctx = context(load_config(_quickstart(tmp_path, data_dir, **keys)))
        assert fingerprint(ctx, stage, "ft_cot") == value, (limits, stage)


def test_ftcot_config_prints_the_new_names(tmp_path, data_dir):
    result = invoke_cli("config", _quickstart(tmp_path, data_dir, teacher={"max_samples": 3}))
    assert result.returncode == 0, result.stderr
    printed = yaml.safe_load(result.stdout)
    assert printed["teacher"]["max_questions"] == 3 and "max_samples" not in printed["teacher"]
    assert RunConfig.model_validate(printed).teacher.max_questions == 3  # what it prints loads again


def test_a_config_with_an_old_name_and_a_mistake_is_still_one_line(tmp_path, data_dir):
    result = invoke_cli("config", _quickstart(tmp_path, data_dir, teacher={"max_samples": 3}, train={"epochs": 0}))
    assert result.returncode == 2
    [line] = result.stderr.splitlines()
    assert line.startswith("error: ") and "train.epochs" in line


def test_a_run_folder_with_an_old_name_is_one_note_for_ftcot_report(tmp_path, data_dir):
    """`ftcot report` reads a run folder's config.yaml for each part of the report: its old name is still said once
    (not once a read), and each note once though two sections spell it."""
    from ftcot.artifacts import SCHEMA_VERSION, Metrics

    keys = yaml.safe_load(
        _quickstart(tmp_path, data_dir, teacher={"max_samples": 7}, evaluate={"max_samples": 5}).read_text()
    )
    run = Path(keys["run_dir"])
    (run / "eval" / "vanilla").mkdir(parents=True)
    (run / "config.yaml").write_text(yaml.safe_dump(keys))
    metrics = Metrics(task="coin_flip", method="vanilla", n=2, correct=1, accuracy=50.0, ci95=[1.0, 99.0], model="m")
    (run / "eval" / "vanilla" / "metrics.json").write_text(
        json.dumps(metrics.dump() | {"schema_version": SCHEMA_VERSION})
    )
    (run / "eval" / "vanilla" / "predictions.jsonl").write_text("")
    for _ in range(2):  # and again in the same process: an invocation of its own
        result = invoke_cli("report", run)
        assert result.returncode == 0, result.stderr
        assert result.stderr.splitlines() == [NOTE]


def test_an_empty_stop_string_is_one_line(tmp_path, data_dir):
    """An empty stop string would end every completion before its first character."""
    result = invoke_cli("config", _quickstart(tmp_path, data_dir, teacher={"rationale": {"stop": ["\n\n", ""]}}))
    assert result.returncode == 2
    [line] = result.stderr.splitlines()
    assert "teacher.rationale.stop.1" in line and "at least 1 character" in line, line
