"""ftcot's log (ftcot.log): stage lines on stderr, one line each however long; --quiet keeps warnings only,
--verbose says why a stage reruns."""

import logging

import pytest
from helpers import invoke_cli, run_config

from ftcot.log import log, set_verbosity


@pytest.fixture
def verbosity():
    yield set_verbosity
    set_verbosity()  # the default, for the tests after this one


def _config(tmp_path, data_dir, **curate):
    return run_config(tmp_path, data_dir, as_file=True, teacher={"backend": "recorded"}, curate=curate)


def _curated(tmp_path, data_dir, tiny_lm, **sections):
    """A run config of the tiny student on 16 Coin Flip questions whose teach and curate stages have run."""
    config = run_config(
        tmp_path,
        data_dir,
        as_file=True,
        teacher={"backend": "recorded", "max_questions": 16},
        student={"model": str(tiny_lm)},
        **sections,
    )
    assert invoke_cli("teach", config).returncode == 0 and invoke_cli("curate", config).returncode == 0
    return config


def test_stage_lines_are_one_line_each_and_quiet_hides_them(tmp_path, data_dir):
    config = _config(tmp_path, data_dir)
    assert invoke_cli("teach", config).returncode == 0
    result = invoke_cli("curate", config)
    assert result.returncode == 0, result.stderr
    [line] = [x for x in result.stderr.splitlines() if x.startswith("curate:")]
    assert len(line) > 80 and line.endswith("validation questions")  # piped: never wrapped at 80 columns
    quiet = invoke_cli("--quiet", "curate", config)
    assert quiet.returncode == 0 and quiet.stderr == "", quiet.stderr


def test_quiet_and_verbose_together_is_one_line(tmp_path):
    result = invoke_cli("--quiet", "--verbose", "tasks")
    assert result.returncode == 2
    assert result.stderr.splitlines() == ["error: --quiet and --verbose contradict each other: give one"]


def test_verbose_says_why_a_stage_reruns(tmp_path, data_dir, capsys, verbosity):
    from ftcot.config import load_config
    from ftcot.pipeline import STAGES, context, is_done

    config = _config(tmp_path, data_dir)
    ctx = context(load_config(config))
    verbosity(verbose=True)
    assert log.isEnabledFor(logging.DEBUG)
    assert not is_done(ctx, "teach")
    assert "teach: runs: no summary" in capsys.readouterr().err
    STAGES["teach"].run(ctx)
    STAGES["curate"].run(ctx)
    assert is_done(ctx, "curate") and capsys.readouterr().err.startswith("curate: kept")
    changed = context(load_config(_config(tmp_path, data_dir, dedupe=False)))
    assert not is_done(changed, "curate") and is_done(changed, "teach")
    assert "curate: reruns: what it depends on (task, split, teacher, curate" in capsys.readouterr().err
    verbosity(quiet=True)
    STAGES["curate"].run(changed)
    assert capsys.readouterr().err == ""


def test_a_torchrun_rank_but_0_logs_nothing(tmp_path, data_dir):
    """Under torchrun every rank runs the command: rank 0 alone says the config's notes and the stage lines (a
    rank's error is still its own line)."""
    config = _config(tmp_path, data_dir)
    assert invoke_cli("teach", config).returncode == 0 and invoke_cli("curate", config).returncode == 0
    old = run_config(
        tmp_path, data_dir, as_file="old.yaml", teacher={"backend": "recorded", "max_samples": 3}, train={"epochs": 1}
    )
    said = {}
    for rank in ("0", "1"):  # dss: curated for no method of this config, refused after the stage's bookkeeping
        result = invoke_cli("--verbose", "train", old, "--method", "dss", env={"RANK": rank})
        assert result.returncode == 2
        said[rank] = result.stderr.splitlines()
    assert said["0"][0].startswith("note: config key max_samples") and said["0"][1].startswith("train dss: runs:")
    assert said["1"] == said["0"][-1:] and said["1"][0].startswith("error: no curated examples for dss")


def test_quiet_training_shows_no_bar(tmp_path, data_dir, tiny_lm):
    """--quiet: the Trainer's own progress bar (and the loss lines it writes through it) is not shown either."""
    config = _curated(
        tmp_path, data_dir, tiny_lm, train={"methods": ["vanilla"], "epochs": 1, "batch_size": 8, "max_length": 64}
    )
    result = invoke_cli("--quiet", "train", config)
    assert result.returncode == 0, result.stderr
    assert result.stderr == "" and "'loss'" not in result.stdout, result.stdout


def test_quiet_export_shows_no_bar(tmp_path, data_dir):
    """--quiet: datasets' bars while the curated set is saved are not shown either (and are drawn again after)."""
    import datasets

    before = datasets.are_progress_bars_disabled()  # an earlier test of this process may have turned them off
    datasets.enable_progress_bars()
    try:
        config = _config(tmp_path, data_dir)
        assert invoke_cli("teach", config).returncode == 0 and invoke_cli("curate", config).returncode == 0
        result = invoke_cli("--quiet", "export", tmp_path / "run", "--to", tmp_path / "out", "--format", "hf")
        assert result.returncode == 0 and result.stderr == "", result.stderr
        loud = invoke_cli("export", tmp_path / "run", "--to", tmp_path / "out2", "--format", "hf")
        assert loud.returncode == 0 and "Saving the dataset" in loud.stderr  # bars are still drawn without --quiet
    finally:
        if before:
            datasets.disable_progress_bars()


def test_verbose_says_once_why_a_method_is_evaluated(tmp_path, data_dir, tiny_lm):
    config = _curated(tmp_path, data_dir, tiny_lm, evaluate={"max_questions": 2, "max_new_tokens": 8})
    result = invoke_cli("--verbose", "evaluate", config, "--method", "zero_shot", "--method", "zero_shot")
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    assert sum(line.startswith("evaluate zero_shot: runs: ") for line in lines) == 1, result.stderr
    assert sum("% (" in line for line in lines) == 1, result.stderr  # its accuracy: evaluated once
