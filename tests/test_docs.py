"""The documentation against the code: the generated configuration guide is up to date with the config's models."""

from pathlib import Path

from ftcot import config_guide

ROOT = Path(__file__).resolve().parents[1]


def test_the_configuration_guide_is_generated_from_the_config_as_it_is_now():
    guide = ROOT / config_guide.GUIDE
    assert guide.is_file(), f"{config_guide.GUIDE} is missing: run `.venv/bin/{config_guide.COMMAND}`"
    assert guide.read_text() == config_guide.render(ROOT), (
        f"{config_guide.GUIDE} is out of date with src/ftcot/config.py: run `.venv/bin/{config_guide.COMMAND}`"
    )


def test_the_guide_documents_every_key_of_every_section():
    text = config_guide.render(ROOT)
    for section in ("teacher", "teacher.rationale", "curate", "student", "train", "train.lora", "evaluate"):
        assert f"\n## {section}\n" in text
    for key in ("num_samples", "val_fraction", "protocol", "engine", "question_field"):
        assert f"| `{key}` |" in text
    # Every key has a description (a field's docstring); none is left blank.
    blank = [line for line in text.splitlines() if line.startswith("| `") and line.endswith("|  |")]
    assert not blank, blank
