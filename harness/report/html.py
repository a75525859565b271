"""The report page: overview, search space, best trial, each section's plots and notes,
and the trials table."""

from __future__ import annotations

import html
from datetime import datetime
from typing import Any

from harness.evaluate import test_examples
from harness.noise import compare_with_hand_picked, short_number, trial_error, with_noise_columns
from harness.report.data import ReportData, _missing
from harness.report.plots import Section
from harness.results import read_ensemble

#: Rows of the summary table in the HTML (the whole table is in trials.csv).
TABLE_ROWS = 30
#: Columns of the trials table that hold words, aligned left.
_TEXT_COLUMNS = ("state", "hand_picked", "fail_reason")


_CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222;
       padding: 0 1em; }
h1 { margin-bottom: 0.2em; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th { background: #f0f0f0; }
td.text, th.text { text-align: left; }
figure { margin: 1em 0; }
figure img { max-width: 100%; border: 1px solid #ddd; }
figcaption { font-size: 0.9em; color: #555; }
.note { color: #444; }
.best { background: #eef6ee; padding: 0.6em 1em; border-left: 4px solid #4a4; }
nav a { margin-right: 1em; }
"""


def render_html(data: ReportData, sections: list[Section]) -> str:
    """The report page: overview, search space, best trial, plots, trials table."""
    esc = html.escape
    meta, table = data.meta, data.table
    name = meta.get("name", data.run_dir.name)
    counts = table["state"].value_counts().to_dict() if not table.empty else {}
    count_text = ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "no trials"
    objective_text = ", ".join(f"{o['metric']} ({o['direction']})" for o in data.objectives)
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>harness report: {esc(name)}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>Study {esc(name)}</h1>",
        f"<p>Backend {esc(str(meta.get('backend', '?')))}; objective {esc(objective_text)}; "
        f"trials: {esc(count_text)}. Generated {datetime.now():%Y-%m-%d %H:%M} from "
        f"<code>{esc(str(data.run_dir))}</code>.</p>",
    ]
    if len(data.objectives) > 1:
        out.append(
            f'<p class="note">Several objectives: the plots use the first one, '
            f"{esc(data.metric or '')}.</p>"
        )
    out.append("<nav>" + "".join(
        f'<a href="#{s.anchor}">{esc(s.title)}</a>' for s in sections
    ) + '<a href="#trials">Trials</a></nav>')
    out += _best_html(data)
    out += _ensemble_html(read_ensemble(data.run_dir))
    out += _space_html(data)
    for note in data.notes:
        out.append(f'<p class="note">{esc(note)}</p>')
    for section in sections:
        out.append(f'<h2 id="{section.anchor}">{esc(section.title)}</h2>')
        for file, caption in section.images:
            out.append(
                f'<figure><img src="{esc(file)}" alt="{esc(caption)}">'
                f"<figcaption>{esc(caption)}</figcaption></figure>"
            )
        for note in section.notes:
            text = note if section.anchor == "curves" else esc(note)
            out.append(f'<p class="note">{text}</p>')
    out += _table_html(data)
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def _best_html(data: ReportData) -> list[str]:
    esc = html.escape
    if data.complete.empty:
        reasons = (
            data.table["fail_reason"].dropna().value_counts()
            if "fail_reason" in data.table.columns else None
        )
        text = "No trial completed."
        if reasons is not None and not reasons.empty:
            text += f" Most common failure: {esc(str(reasons.index[0]))}"
        return [f'<p class="best">{text}</p>']
    best = data.complete.iloc[0]
    params = ", ".join(
        f"{esc(n)} = {esc(_show(best[n]))}" for n in data.searched if not _missing(best[n])
    )
    values = ", ".join(
        f"{esc(o['metric'])} = {esc(_show(best[o['metric']]))}{_error_text(best, o['metric'])}"
        for o in data.objectives if o["metric"] in best.index
    )
    tests = [c for c in data.table.columns if str(c).startswith("test_")]
    measured = ", ".join(
        f"{esc(c)} = {esc(_show(best[c]))}" for c in tests if not _missing(best[c])
    )
    test_line = f"<br>test split (measured once): {measured}" if measured else ""
    return [
        f'<p class="best"><b>Best trial #{int(best["number"])}</b>: {values}{test_line}'
        f"{_hand_picked_html(data, tests)}<br>{params or 'no searched parameters'}</p>"
    ]


def _error_text(row: Any, metric: str) -> str:
    """`` (standard error 0.0090)`` when the figure's standard error is known."""
    error = trial_error(row, metric)
    return f" (standard error {short_number(error)})" if error is not None else ""


def _hand_picked_html(data: ReportData, tests: list[str]) -> str:
    """The best trial against the best hand-picked one, on both splits, with the noise."""
    esc = html.escape
    versus = compare_with_hand_picked(
        data.table, data.objectives, int(data.meta.get("enqueued") or 0),
        test_examples(data.run_dir),
    )
    if versus is None:
        return ""
    out = f"<br>{esc(versus.validation_line())}"
    if versus.test_line() is not None:
        row = data.table[data.table["number"] == versus.picked].iloc[0]
        measured = ", ".join(
            f"{esc(c)} = {esc(_show(row[c]))}" for c in tests if not _missing(row[c])
        )
        out += (
            f"<br>hand-picked trial #{versus.picked} on the test split (measured once): "
            f"{measured}; {esc(versus.test_line())}"
        )
    return out


def _ensemble_html(record: dict[str, Any] | None) -> list[str]:
    """The ensemble's section: members and weights, its validation and test figures
    against the best single model's, and how often its members disagree."""
    if record is None:
        return []
    esc = html.escape
    best = record["best_single"]
    how = (
        f"greedy selection with replacement on {record['selected_on']} "
        f"({record['rounds']} rounds)" if record.get("rounds") else "a plain average"
    )
    rows = [
        "<tr><th>figure</th><th>ensemble</th><th>best single model (trial "
        f"#{best})</th></tr>"
    ]
    for name, value in record["validation"].items():
        single = record["best_single_validation"].get(name)
        rows.append(f"<tr><td class='text'>val_{esc(name)}</td><td>{value:.4f}</td>"
                    f"<td>{_show(single)}</td></tr>")
    test = record.get("test") or {}
    for name, value in (test.get("ensemble") or {}).items():
        single = (test.get("best_single") or {}).get(name)
        rows.append(f"<tr><td class='text'>test_{esc(name)}</td><td>{value:.4f}</td>"
                    f"<td>{_show(single)}</td></tr>")
    members = "; ".join(f"trial #{m['trial']}: weight {m['weight']:.2f}"
                        for m in record["members"])
    out = [
        '<h2 id="ensemble">Ensemble</h2>',
        f"<p>{len(record['members'])} kept models, weighed on the validation split by "
        f"{esc(how)}: {esc(members)}.</p>",
        "<table>" + "".join(rows) + "</table>",
    ]
    notes = []
    if "accuracy_gap" in test:
        from harness.ensemble_selection import gap_line  # lazy: numpy

        notes.append(gap_line(test["accuracy_gap"], test["gap_standard_error"]))
    if record.get("disagreement") is not None and record.get("task") != "regression":
        notes.append(f"Members disagree on {record['disagreement']:.2%} of validation examples "
                     "(per pair, on average); the less they disagree, the less an ensemble "
                     "can gain.")
    notes.append("The validation figure of an ensemble is optimistic: its weights were "
                 "chosen on that split. The test split, measured once, is the fair comparison.")
    out += [f'<p class="note">{esc(n)}</p>' for n in notes]
    return out


def _space_html(data: ReportData) -> list[str]:
    esc = html.escape
    searched = data.meta.get("searched", {})
    if not searched:
        return ['<p class="note">No searched parameters recorded in study.json.</p>']
    rows = ['<h2 id="space">Search space</h2>', "<table>",
            '<tr><th class="text">parameter</th><th class="text">domain</th>'
            '<th class="text">sampled when</th></tr>']
    for name, info in searched.items():
        info = info if isinstance(info, dict) else {"domain": info}
        rows.append(
            f'<tr><td class="text">{esc(name)}</td><td class="text">'
            f"{esc(str(info.get('domain', '')))}</td><td class=\"text\">"
            f"{esc(str(info.get('condition') or 'always'))}</td></tr>"
        )
    rows.append("</table>")
    literals = data.meta.get("literals") or {}
    if literals:
        fixed = ", ".join(f"{esc(k)} = {esc(_show(v))}" for k, v in literals.items())
        rows.append(f'<p class="note">Fixed: {fixed}</p>')
    return rows


def _table_html(data: ReportData) -> list[str]:
    esc = html.escape
    table = data.table
    out = ['<h2 id="trials">Trials</h2>']
    if table.empty:
        return out + ['<p class="note">No trials recorded.</p>']
    table = with_noise_columns(table, data.objectives, data.meta.get("enqueued"))
    columns = ["number", "state", "hand_picked"]
    for objective in data.objectives:
        metric = objective["metric"]
        columns += [metric, f"{metric}_std", f"{metric}_se"]
    columns += [c for c in table.columns if str(c).startswith("test_")]
    columns += data.searched
    columns += ["val_loss", "loss", "epochs_run", "duration_s", "retry_of", "fail_reason"]
    seen: list[str] = []
    for column in columns:
        if column in table.columns and column not in seen:
            seen.append(column)
    shown = table.head(TABLE_ROWS)
    out.append("<table><tr>" + "".join(
        f'<th class="{"text" if c in _TEXT_COLUMNS else ""}">{esc(c)}</th>'
        for c in seen
    ) + "</tr>")
    for _, row in shown.iterrows():
        cells = []
        for column in seen:
            value = row[column]
            text = "" if _missing(value) else _show(value)
            cls = "text" if column in _TEXT_COLUMNS else ""
            cells.append(f'<td class="{cls}">{esc(text)}</td>')
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</table>")
    if len(table) > TABLE_ROWS:
        out.append(
            f'<p class="note">Showing the best {TABLE_ROWS} of {len(table)} trials; '
            'all of them are in <a href="../trials.csv">trials.csv</a>.</p>'
        )
    return out


def _show(value: Any) -> str:
    value = value.item() if hasattr(value, "item") else value
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e12:
            return str(int(value))
        return f"{value:.4g}"
    return str(value)
