"""The documentation against the code: the generated configuration guide is up to date with the config's models,
and the README's and the guides' relative links lead to files (and headings) that exist."""

import re
from pathlib import Path

import pytest

from ftcot import config_guide

ROOT = Path(__file__).resolve().parents[1]
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def relative_links(page: Path) -> list[str]:
    """The targets of a Markdown page's links and images that are paths or anchors (no URL), outside code blocks
    and code spans."""
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)
    text = re.sub(r"`[^`\n]*`", "", text)
    return [t for t in LINK.findall(text) if not re.match(r"[a-z][a-z0-9+.-]*:", t)]


def anchors(page: Path) -> set[str]:
    """The anchors GitHub gives a Markdown page's headings."""
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)
    return {config_guide.slug(h) for h in re.findall(r"^#+ (.+)$", text, flags=re.M)}


def broken(page: Path) -> list[str]:
    """The page's relative links whose file does not exist, or whose #anchor is no heading of that Markdown file."""
    bad = []
    for target in relative_links(page):
        path, _, anchor = target.partition("#")
        file = page.parent / path if path else page
        if not file.exists() or (anchor and file.suffix == ".md" and anchor not in anchors(file)):
            bad.append(target)
    return bad


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


def test_the_readme_links_to_docs_that_exist():
    links = relative_links(ROOT / "README.md")
    assert sum(t.startswith("docs/") for t in links) >= 10, links  # the guides
    missing = broken(ROOT / "README.md")
    assert not missing, f"README.md links to files or headings that do not exist: {missing}"


PAGES = sorted((ROOT / "docs").glob("*.md")) + sorted((ROOT / "docs" / "results").glob("*.md"))


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT / "docs")))
def test_the_guides_link_to_files_that_exist(page):
    missing = broken(page)
    assert not missing, f"{page.relative_to(ROOT)} links to files or headings that do not exist: {missing}"
