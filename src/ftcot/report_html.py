"""`report.html`: the report as one self-contained page (no server, nothing fetched; plots inline) that shows,
beside the results table, every test question of every run with each method's output, prediction and why it
is wrong, the teacher's rationale, and the curated training set with why each dropped rationale was dropped.

Model and dataset text reaches the page only as JSON data, read by the page's script and written with
textContent: a rationale holding `<script>` shows as text and runs nothing.
"""

from __future__ import annotations

import base64
import html
import json
import re
from pathlib import Path

from ftcot.artifacts import read_predictions, read_run_config
from ftcot.data import data_dir
from ftcot.errors import UserError
from ftcot.files import read_jsonl, write_text
from ftcot.judge import solved
from ftcot.methods import METHODS, REPORT_ORDER, TEACHER, label
from ftcot.run_folder import RunFolder
from ftcot.tasks import BUILTIN, load_task
from ftcot.tasks.answers import AnswerFormat
from ftcot.tasks.prompts import COT_TRIGGER
from ftcot.tasks.rationales import FAILURE_KINDS
from ftcot.teachers.records import read_records


def _answer_format(run: Path, task: str) -> AnswerFormat | None:
    """How the run's task reads answers: a built-in task's, or the run config's own task's where its data is
    still there to read (else None: its outputs are shown as recorded)."""
    if task in BUILTIN:
        return load_task(task).answer_format
    try:
        cfg = read_run_config(run)
        return load_task(cfg.task, data_dir(cfg.data_dir)).answer_format
    except UserError:
        return None


def _run_data(run: Path, task: str) -> dict:
    """One run's test questions by method (with why each wrong one is wrong), the teacher's rationales (each
    question once, judged where the task is known), and its curated training set."""
    fmt, folder = _answer_format(run, task), RunFolder(run)
    methods, questions = {}, {}
    for name in (m for m in REPORT_ORDER if m in METHODS):  # the teacher's are its records (below)
        path = folder.predictions(name)
        if not path.is_file():
            continue
        m, rows = METHODS[name], {}
        for p in read_predictions(path):
            shown = p.prompt.rsplit(COT_TRIGGER, 1)[-1] + "\n" + p.output if m.answer_step else p.output  # rationale
            by_content = p.prediction_by_content  # evaluate.choice_by_content's reading, where made
            rows[str(p.sample_index)] = [
                p.prediction,
                p.correct,
                p.failure,
                shown,
                None if by_content is None else [by_content, p.correct_by_content],
            ]
            questions.setdefault(str(p.sample_index), [p.question, p.answer])
        if rows:
            methods[name] = rows
    records = folder.completions
    teacher: dict[str, dict] = {}
    for r in read_records(records) if records.is_file() else []:
        right = solved(fmt, r.answer_completion, r.answer) if fmt is not None else None
        entry = teacher.setdefault(str(r.sample_index), {"question": r.question, "samples": []})
        entry["samples"].append(
            [r.completion_index, r.reasoning_completion.strip(), r.answer_completion.strip(), right]
        )
    per_question = folder.per_question
    curated = {}
    for q in read_jsonl(per_question) if per_question.is_file() else []:
        curated[str(q["sample_index"])] = q["fates"]
    return {
        "run": str(run.name),
        "task": task,
        "labels": {m: label(m) for m in methods},
        "methods": methods,
        "questions": questions,
        "teacher": teacher,
        "curated": curated,
    }


def _table(rows: list[dict]) -> str:
    """The results table (rows: methods and students; a column per run, headed by its task), accuracy with its
    95% interval."""
    runs = list(dict.fromkeys((r["run"], r["task"]) for r in rows))
    order = list(REPORT_ORDER)
    labels = sorted({(order.index(r["method"]), r["variant"].startswith("calculator"), r["label"]) for r in rows})
    cells = {(r["label"], r["run"]): r for r in rows}
    head = "".join(
        f"<th>{html.escape(task)}<br><small>{html.escape(Path(run).name)}</small></th>" for run, task in runs
    )
    body = []
    for *_, name in labels:
        values = "".join(
            f"<td>{r['accuracy']:.2f} <small>[{r['ci95_low']:.1f}, {r['ci95_high']:.1f}]</small></td>"
            if (r := cells.get((name, run)))
            else "<td></td>"
            for run, _ in runs
        )
        body.append(f"<tr><th>{html.escape(name)}</th>{values}</tr>")
    return f"<div class=wide><table class=results><tr><th>method: student</th>{head}</tr>{''.join(body)}</table></div>"


def _html_table(table: tuple[list[str], list[list[str]]]) -> str:
    """One of the report's notes tables, every cell escaped."""
    header, cells = table
    head = "".join(f"<th>{html.escape(c)}</th>" for c in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in cells)
    return f"<table class=notes><tr>{head}</tr>{body}</table>"


def write_html(
    root: Path,
    runs: list[tuple[Path, str]],
    rows: list[dict],
    plots: list[str],
    notes: list[tuple[list[str], list[list[str]]]],
) -> Path:
    """report.html in root, from the runs (folder, task), the report's rows, its plots and its notes tables
    (the failure diagnostics, why answers are wrong)."""
    data = {"runs": [_run_data(run, task) for run, task in runs], "kinds": FAILURE_KINDS, "teacher": TEACHER}
    # JSON inside <script>: every "<" escaped, so no text can close the element or open a comment; a lone
    # surrogate (which no page can hold as text) shown as U+FFFD.
    blob = re.sub("[\ud800-\udfff]", "\ufffd", json.dumps(data, ensure_ascii=False)).replace("<", "\\u003c")
    images = "".join(
        f'<figure><img alt="{html.escape(p)}" src="data:image/png;base64,'
        f'{base64.b64encode((root / p).read_bytes()).decode()}"></figure>'
        for p in plots
    )
    parts = {
        "TABLE": _table(rows)
        + "<h3>Failure diagnostics</h3>"
        + "".join(f"<div class=wide>{_html_table(note)}</div>" for note in notes),
        "PLOTS": images,
        "DATA": blob,
    }
    page = re.sub(r"\{\{(TABLE|PLOTS|DATA)\}\}", lambda m: parts[m.group(1)], PAGE)  # once: no name is rescanned
    out = root / "report.html"
    write_text(out, re.sub("[\ud800-\udfff]", "\ufffd", page))
    out.chmod(0o644)  # a page to share
    return out


PAGE = r"""<!doctype html>
<html lang=en><head><meta charset=utf-8><title>ftcot report</title>
<meta name=viewport content="width=device-width, initial-scale=1">
<style>
body{font:14px/1.45 system-ui,sans-serif;margin:0 auto;max-width:1200px;padding:0 16px;color:#1d232b}
h1{font-size:22px;margin:18px 0 4px}h2{font-size:17px;margin:22px 0 8px;border-bottom:1px solid #dde}
h3{font-size:15px;margin:16px 0 4px}table.results{border-collapse:collapse;margin:8px 0}table.results td,table.results th{border:1px solid #ccd;
padding:3px 8px;text-align:left}table.results td{text-align:right}small{color:#667}.wide{overflow-x:auto}
table.notes{border-collapse:collapse;margin:8px 0;font-size:13px}table.notes td,table.notes th{border:1px solid #ccd;
padding:2px 6px;text-align:left;vertical-align:top}
figure{display:inline-block;margin:4px}figure img{max-width:560px;border:1px solid #dde}
.controls{position:sticky;top:0;background:#fff;padding:8px 0;border-bottom:1px solid #dde;display:flex;
gap:8px;flex-wrap:wrap;align-items:center}select,input{font:inherit;padding:3px}input[type=search]{width:260px}
.q{border:1px solid #dde;border-radius:6px;margin:10px 0;padding:8px 10px}
.q .text{white-space:pre-wrap;overflow-wrap:anywhere}
.gold{color:#445;font-weight:600}.m{display:grid;grid-template-columns:200px minmax(0,1fr);gap:2px 10px;margin-top:6px}
.ok{color:#11743a}.bad{color:#b3261e}.out{white-space:pre-wrap;overflow-wrap:anywhere;font-family:ui-monospace,monospace;font-size:12px;
background:#f6f7f9;padding:4px 6px;border-radius:4px}.kind{font-size:12px;color:#7a4b00}
.fate{font-size:12px;font-weight:600}.more{margin:12px 0}details{margin-top:4px}
</style></head><body>
<h1>ftcot report</h1>
<section id=results><h2>Results</h2><p>Test accuracy (%) and its 95% interval.</p>{{TABLE}}
<div>{{PLOTS}}</div></section>
<section id=questions><h2>Questions</h2>
<div class=controls>
<label>run <select id=run></select></label>
<label>show <select id=show><option value=all>all</option><option value=wrong>wrong</option>
<option value=right>right</option></select></label>
<label>for <select id=method></select></label>
<label>why wrong <select id=kind><option value="">any</option></select></label>
<input id=search type=search placeholder="search questions and outputs">
<span id=count></span>
</div>
<div id=cards></div><button class=more id=more>show more</button></section>
<section id=training><h2>Curated training set</h2>
<p>Each train question's teacher rationales: kept, or why dropped (the curation in the run's curate/).</p>
<div class=controls><label>fate <select id=fate><option value="">any</option></select></label>
<input id=csearch type=search placeholder="search the train questions"><span id=ccount></span>
</div>
<div id=curated></div><button class=more id=cmore>show more</button></section>
<script type=application/json id=data>{{DATA}}</script>
<script>
"use strict";
const D = JSON.parse(document.getElementById("data").textContent);
const $ = id => document.getElementById(id);
const el = (tag, cls, text) => { const e = document.createElement(tag); if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text; return e; };
const PAGE = 50;
let shown = PAGE, cshown = PAGE;
D.runs.forEach((r, i) => $("run").append(new Option(r.task + " — " + r.run, i)));
Object.entries(D.kinds).forEach(([k, v]) => $("kind").append(new Option(v, k)));
const run = () => D.runs[+$("run").value];
function methods() {
  const m = $("method"), keep = m.value; m.replaceChildren();
  Object.keys(run().methods).forEach(k => m.append(new Option(run().labels[k], k)));
  if ([...m.options].some(o => o.value === keep)) m.value = keep;
  else if ([...m.options].some(o => o.value === "ft_cot")) m.value = "ft_cot";
}
function questionText(r, id) {
  const q = r.questions[id]; return q ? q[0] : "";
}
function matches(r, id) {
  const row = r.methods[$("method").value] && r.methods[$("method").value][id];
  if (!row) return false;
  const show = $("show").value, kind = $("kind").value, needle = $("search").value.toLowerCase();
  if (show === "wrong" && row[1]) return false;
  if (show === "right" && !row[1]) return false;
  if (kind && row[2] !== kind) return false;
  if (needle) {
    const hay = [questionText(r, id), ...Object.values(r.methods).map(m => m[id] ? m[id][3] : "")].join(" ");
    if (!hay.toLowerCase().includes(needle)) return false;
  }
  return true;
}
function card(r, id) {
  const q = r.questions[id] || ["", ""], box = el("div", "q");
  box.dataset.id = id;
  box.append(el("div", "text", questionText(r, id)), el("div", "gold", "gold: " + q[1]));
  const grid = el("div", "m");
  Object.entries(r.methods).forEach(([name, rows]) => {
    const row = rows[id]; if (!row) return;
    const head = el("div", row[1] ? "ok" : "bad",
                    (row[1] ? "✓ " : "✗ ") + r.labels[name] + ": " + (row[0] === null ? "no answer" : row[0]));
    const body = el("div");
    if (row[2]) body.append(el("div", "kind", Object.hasOwn(D.kinds, row[2]) ? D.kinds[row[2]] : row[2]));
    if (row[4]) body.append(el("div", row[4][1] ? "kind ok" : "kind bad",
                               "read by content: " + row[4][0] + (row[4][1] ? " (right)" : " (wrong)")));
    body.append(el("div", "out", row[3]));
    grid.append(head, body);
  });
  ((r.teacher[id] || {}).samples || []).forEach(t => {
    grid.append(el("div", t[3] === null ? "" : t[3] ? "ok" : "bad",
                   (t[3] === null ? "" : t[3] ? "✓ " : "✗ ") + "teacher (sample " + t[0] + ")"),
                el("div", "out", t[1] + "\n→ " + t[2]));
  });
  box.append(grid);
  return box;
}
function render() {
  const r = run(), ids = Object.keys(r.methods[$("method").value] || {}).filter(id => matches(r, id));
  $("count").textContent = ids.length + " of " + Object.keys(r.questions).length + " questions";
  $("cards").replaceChildren(...ids.slice(0, shown).map(id => card(r, id)));
  $("more").hidden = ids.length <= shown;
}
function renderCurated() {
  const r = run(), needle = $("csearch").value.toLowerCase(), fate = $("fate").value;
  const ids = Object.keys(r.curated).filter(id => (!fate || Object.values(r.curated[id]).includes(fate))
    && (!needle || r.teacher[id] && (r.teacher[id].question + " "
        + r.teacher[id].samples.map(t => t[1]).join(" ")).toLowerCase().includes(needle)));
  $("ccount").textContent = ids.length + " train questions";
  $("curated").replaceChildren(...ids.slice(0, cshown).map(id => {
    const box = el("div", "q"), fates = r.curated[id], entry = r.teacher[id] || {question: "", samples: []};
    box.append(el("div", "text", entry.question || "question " + id));
    entry.samples.forEach(t => {
      const fate = Object.hasOwn(fates, t[0]) ? fates[t[0]] : "not recorded";
      box.append(el("div", "fate " + (fate === "kept" ? "ok" : "bad"), "sample " + t[0] + ": " + fate),
                 el("div", "out", t[1] + "\n→ " + t[2]));
    });
    return box;
  }));
  $("cmore").hidden = ids.length <= cshown;
}
function fates() {  // the fates the run's curation gave, for the curated set's filter
  const f = $("fate"), keep = f.value, seen = new Set(Object.values(run().curated).flatMap(Object.values));
  f.replaceChildren(new Option("any", ""), ...[...seen].sort().map(x => new Option(x, x)));
  if (seen.has(keep)) f.value = keep;
}
function all() { methods(); fates(); shown = PAGE; cshown = PAGE; render(); renderCurated(); }
$("run").addEventListener("change", all);
["show", "method", "kind"].forEach(id => $(id).addEventListener("change", () => { shown = PAGE; render(); }));
$("search").addEventListener("input", () => { shown = PAGE; render(); });
$("csearch").addEventListener("input", () => { cshown = PAGE; renderCurated(); });
$("fate").addEventListener("change", () => { cshown = PAGE; renderCurated(); });
$("more").addEventListener("click", () => { shown += PAGE; render(); });
$("cmore").addEventListener("click", () => { cshown += PAGE; renderCurated(); });
all();
// A link may set the controls (report.html#show=wrong&kind=loop&search=date), the page's own, as a reader
// would; only=<part> shows that part of the page alone.
new URLSearchParams(location.hash.slice(1)).forEach((value, key) => {
  if (key === "only") {  // one part alone (only=questions), e.g. for a screenshot
    document.querySelectorAll("body > section").forEach(part => { part.hidden = part.id !== value; }); return; }
  const control = $(key); if (!control) return;
  control.value = value;
  control.dispatchEvent(new Event(control.tagName === "INPUT" ? "input" : "change"));
});
</script></body></html>
"""
