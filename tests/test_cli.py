import shutil

from conftest import run_cli


def _one_line_error(result, pattern):
    import re

    assert result.returncode == 2, result
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert re.search(pattern, lines[0]), lines[0]
    assert "Traceback" not in result.stderr


def test_tasks_lists_counts_and_teacher_coverage(shared_data):
    result = run_cli("tasks", "--data-dir", shared_data)
    assert result.returncode == 0, result.stderr
    rows = {line.split()[1]: line for line in result.stdout.splitlines() if line.startswith("│")}
    assert len(rows) == 12
    assert "│ 420 " in rows["multiarith"] and "│ 180 " in rows["multiarith"]
    assert "raw file missing" in rows["aqua"]
    # gsm8k: teacher records cover only the test side.
    cells = [c.strip() for c in rows["gsm8k"].split("│")[1:-1]]
    assert cells[3:] == ["7473", "1319", "0", "1319"]


def test_show_prints_teacher_and_student_views(shared_data):
    result = run_cli("show", "multiarith", "0", "--data-dir", shared_data)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "A: Let's think step by step." in out
    assert "recorded text-davinci-002 step 2" in out
    assert " ###" in out and "--> 39" in out


def test_unknown_task(shared_data):
    _one_line_error(run_cli("show", "no_such_task", "1", "--data-dir", shared_data), r"^error: unknown task")


def test_index_out_of_range(shared_data):
    _one_line_error(run_cli("show", "coin_flip", "500", "--data-dir", shared_data),
                    r"^error: sample index 500 out of range for task coin_flip")


def test_missing_file(tmp_path):
    _one_line_error(run_cli("show", "coin_flip", "1", "--data-dir", tmp_path),
                    r"^error: missing data file .*raw/coin_flip/coin_flip\.json: .*https://")


def test_malformed_json_line_names_file_and_line(shared_data, tmp_path):
    for part in ("raw", "splits"):
        shutil.copytree(shared_data / part, tmp_path / part)
    teacher = tmp_path / "teacher" / "text-davinci-002__zs_cot"
    teacher.mkdir(parents=True)
    lines = (shared_data / "teacher/text-davinci-002__zs_cot/coin_flip.jsonl").read_text().splitlines()
    lines[4] = lines[4][:50]
    (teacher / "coin_flip.jsonl").write_text("\n".join(lines) + "\n")
    _one_line_error(run_cli("show", "coin_flip", "1", "--data-dir", tmp_path),
                    r"^error: .*coin_flip\.jsonl:5: malformed JSON line")


def test_config_errors(tmp_path):
    _one_line_error(run_cli("config", tmp_path / "absent.yaml"), r"^error: config file .* does not exist")
    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text("task: coin_flip\n  split: [\n")
    _one_line_error(run_cli("config", bad_yaml), r"^error: .*bad\.yaml:\d+: not valid YAML")
    unreadable = tmp_path / "dir.yaml"
    unreadable.mkdir()
    _one_line_error(run_cli("config", unreadable), r"^error: cannot read config")
    unknown_key = tmp_path / "unknown.yaml"
    unknown_key.write_text("task: coin_flip\nepochz: 3\n")
    _one_line_error(run_cli("config", unknown_key), r"^error: .*unknown\.yaml: epochz: unknown key$")
    bad_task = tmp_path / "task.yaml"
    bad_task.write_text("task: coin_flipp\n")
    _one_line_error(run_cli("config", bad_task), r"^error: .*task\.yaml: task: .*unknown task 'coin_flipp'")
    good = tmp_path / "good.yaml"
    good.write_text("task: coin_flip\n")
    result = run_cli("config", good)
    assert result.returncode == 0 and "split: default" in result.stdout


def test_data_fetch_and_verify_from_local_folder(shared_data, tmp_path):
    dest = tmp_path / "data"
    result = run_cli("data", "fetch", "--to", dest, "--source", shared_data)
    assert result.returncode == 0, result.stderr
    assert "41/42 files present and verified" in result.stdout
    assert run_cli("data", "verify", "--data-dir", dest).returncode == 0
    corrupt = dest / "splits" / "coin_flip__default.json"
    corrupt.write_text("{}")
    _one_line_error(run_cli("data", "verify", "--data-dir", dest), r"^error: 1 data file\(s\) .* fail their checksum")
