"""docs/configuration.md, generated from the run config's pydantic models (ftcot.config) so that it cannot drift
from them: each section of the config (and each nested model) is a table of its keys, their types, defaults and
descriptions (the fields' docstrings). `python -m ftcot.config_guide` writes it; tests/test_docs.py fails when the
committed guide differs from what this module renders now."""

from __future__ import annotations

import re
import sys
import types
from pathlib import Path
from typing import Annotated, Literal, Union, get_args, get_origin

import yaml
from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from ftcot.config import PROTOCOLS, Operational, RunConfig
from ftcot.tasks import BUILTIN, TaskDecl
from ftcot.tasks.answers import FORMAT_NAMES

GUIDE = Path("docs/configuration.md")  # relative to the repository root
COMMAND = "python -m ftcot.config_guide"
# A section's path for the task declaration: `task:` is a built-in key or this mapping.
TASK_SECTION = "task (a custom task)"


def slug(heading: str) -> str:
    """The anchor GitHub gives a heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def link(path: str) -> str:
    return f"[{path}](#{slug(path)})"


def _cell(text: str) -> str:
    """Text for a table cell: one line, `|` escaped, `<` and `>` escaped outside code spans."""
    text = " ".join(text.split()).replace("|", "\\|")
    parts = text.split("`")
    for i in range(0, len(parts), 2):  # outside code spans
        parts[i] = parts[i].replace("<", "&lt;").replace(">", "&gt;")
    return "`".join(parts)


def _models(annotation) -> list[type[BaseModel]]:
    """The pydantic models an annotation holds, in order, each once."""
    found: list[type[BaseModel]] = []
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        found.append(annotation)
    for arg in get_args(annotation):
        found += [m for m in _models(arg) if m not in found]
    return found


def _or(items: list[str]) -> str:
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} or {items[-1]}"


def type_text(annotation, sections: dict[type[BaseModel], str]) -> str:
    """An annotation in words: `int or null`, `` `linear` or `constant` ``, `list of ...`, a nested model as a
    link to its section."""
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Annotated:
        return type_text(args[0], sections)
    if origin is Literal:
        return _or([f"`{a}`" for a in args])
    if origin in (Union, types.UnionType):
        rest = [a for a in args if a is not type(None)]
        words = [type_text(a, sections) for a in rest] + (["null"] if len(rest) < len(args) else [])
        return _or(words)
    if origin is list:
        inner = type_text(args[0], sections)
        return f"list of {f'({inner})' if ' or ' in inner else inner}"
    if origin is dict:
        return f"mapping of {type_text(args[0], sections)} to {type_text(args[1], sections)}"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return link(sections[annotation]) if annotation in sections else annotation.__name__
    return getattr(annotation, "__name__", str(annotation))


def default_text(value) -> str:
    if value is PydanticUndefined:
        return "required"
    if isinstance(value, BaseModel):
        return "its section"
    flow = yaml.safe_dump(value, default_flow_style=True, width=10_000).strip().removesuffix("...").strip()
    return f"`{flow}`"


def _nested(path: str, name: str, annotation) -> dict[type[BaseModel], str]:
    """The section of each model a field holds: `teacher.rationale`, `teacher.prices.MODEL` for a mapping's
    values; the task declaration's is its own."""
    sub = f"{path}.{name}" if path else name
    if dict in (get_origin(annotation), *(get_origin(a) for a in get_args(annotation))):
        sub += ".MODEL"
    return {m: TASK_SECTION if m is TaskDecl else sub for m in _models(annotation)}


def _sections(model: type[BaseModel], path: str, defaults: BaseModel | None, out: list) -> None:
    """(path, model, the instance whose values are the defaults or None for the class's) for a model and every
    model nested in it, depth first, each field's nested sections right after its own."""
    out.append((path, model, defaults))
    for name, field in model.model_fields.items():
        value = getattr(defaults, name) if defaults is not None else field.default
        for nested, sub in _nested(path, name, field.annotation).items():
            if nested is not TaskDecl:  # the task declaration: its own section, at the end
                _sections(nested, sub, value if isinstance(value, nested) else None, out)


def _table(path: str, model: type[BaseModel], defaults: BaseModel | None) -> list[str]:
    rows = ["| key | type | default | description |", "|---|---|---|---|"]
    for name, field in model.model_fields.items():
        value = getattr(defaults, name) if defaults is not None else field.default
        kind = type_text(field.annotation, _nested(path, name, field.annotation))
        note = " Changing it reruns nothing." if any(isinstance(m, Operational) for m in field.metadata) else ""
        rows.append(f"| `{name}` | {_cell(kind)} | {default_text(value)} | {_cell((field.description or '') + note)} |")
    return rows


def render(root: Path | None = None) -> str:
    """The configuration guide's Markdown; `root`: the checkout, whose configs/quickstart.yaml it quotes."""
    root = root or Path(__file__).resolve().parents[2]
    found: list = []
    _sections(RunConfig, "", None, found)
    found.append((TASK_SECTION, TaskDecl, None))
    lines = [
        "# Configuration",
        "",
        f"<!-- Generated from src/ftcot/config.py by `{COMMAND}`; do not edit by hand. -->",
        "",
        "A run is one YAML file. Every key has a default except `task`; a config sets only what differs.",
        "`ftcot config CONFIG.yaml` validates one and prints every key with its value. An unknown key or a bad",
        "value is one line naming the key, exit code 2. This page is generated from the config's pydantic",
        "models (`src/ftcot/config.py`, each field's docstring its description):",
        f"`{COMMAND}` rewrites it, and `tests/test_docs.py` fails when it is out of date. A run folder's stages",
        "rerun when a key of a section they depend on changes, except the keys marked so below",
        "([the run folder](run-folder.md)). What the keys do at",
        "length: [your task](your-task.md), [teachers](teachers.md), [engines](engines.md) and",
        "[beyond the paper](beyond-the-paper.md).",
        "",
        "`configs/quickstart.yaml`, what `make demo` runs:",
        "",
        "```yaml",
        (root / "configs" / "quickstart.yaml").read_text().rstrip(),
        "```",
        "",
        "Sections: " + ", ".join(link(path or "top level") for path, _, _ in found) + ".",
        "",
    ]
    for path, model, defaults in found:
        lines += [f"## {path or 'top level'}", ""]
        doc = " ".join((model.__doc__ or "").split())
        if doc and model is not TaskDecl:
            lines += [doc, ""]
        if model is TaskDecl:
            lines += [
                "`task:` is a built-in task's key (" + ", ".join(f"`{k}`" for k in BUILTIN) + "), the path of a",
                "YAML file holding this mapping, or the mapping itself: a task of your own ([your task](your-task.md)).",
                "Answer formats: " + ", ".join(f"`{f}`" for f in FORMAT_NAMES) + ", or `regex:<pattern>`.",
                "",
            ]
        if path == "train":
            preset = ", ".join(f"`{k}: {default_text(v).strip('`')}`" for k, v in PROTOCOLS["paper"].items())
            lines += [f"`protocol: paper` sets, for each of these keys the config leaves unset: {preset}.", ""]
        if path.endswith(".MODEL"):
            lines += [f"`MODEL` stands for the model's name, e.g. `{path.split('.')[-2]}: {{gpt-4o-mini: ...}}`.", ""]
        lines += [*_table(path, model, defaults), ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """Write the guide: to the path given, else docs/configuration.md of this checkout."""
    argv = sys.argv[1:] if argv is None else argv
    root = Path(__file__).resolve().parents[2]
    target = Path(argv[0]) if argv else root / GUIDE
    target.write_text(render(root))
    print(f"wrote {target}")


if __name__ == "__main__":
    main()
