"""``harness show STUDY``: the trial table, best first, read from the study's storage (so
it is current while the study runs, on this machine or another)."""

from __future__ import annotations

import sys
import time

import harness
from harness.commands.summary import counts
from harness.errors import HarnessError
from harness.noise import (
    compare_with_hand_picked,
    short_number,
    trial_error,
    with_noise_columns,
    within_noise_of_best,
)
from harness.results import finished_counted, pandas, read_ensemble, read_meta, resolve_run_dir
from harness.show import study_ended, study_table


def add_parser(subparsers, add_common) -> None:
    """``harness show STUDY [--top N] [--all-columns] [--watch]``."""
    show = subparsers.add_parser("show", help="print a study's trials, best first")
    show.add_argument("target", help="study name (under --runs-dir) or run directory")
    show.add_argument("--top", type=int, help="only the N best trials")
    show.add_argument("--all-columns", action="store_true", help="every metric column too")
    show.add_argument(
        "--watch", action="store_true", help="refresh every few seconds until the study ends"
    )
    add_common(show)
    show.set_defaults(handler=cmd_show)


@harness.hookimpl
def harness_register_commands(subparsers, add_common) -> None:
    """Add ``harness show``."""
    add_parser(subparsers, add_common)


def cmd_show(args) -> int:
    """Print the table once, or (``--watch``) every few seconds until the study ends."""
    if args.top is not None and args.top < 1:
        raise HarnessError(f"--top must be at least 1, got {args.top}")
    run_dir = resolve_run_dir(args.target, args.runs_dir)
    if not args.watch:
        print(_show_text(run_dir, study_table(run_dir), args))
        return 0
    while True:
        table = study_table(run_dir)
        if sys.stdout.isatty():
            print("\x1b[2J\x1b[H", end="")
        print(_show_text(run_dir, table, args), flush=True)
        if study_ended(run_dir, table):
            budget = int(read_meta(run_dir).get("trials") or 0)
            if int(finished_counted(table).sum()) < budget:
                print(
                    "no harness run is running this study now; run its command again to "
                    "resume it",
                    file=sys.stderr,
                )
            return 0
        time.sleep(2.0)


def _show_text(run_dir, table, args) -> str:
    meta = read_meta(run_dir)
    header = f"study {meta.get('name', run_dir.name)}: {counts(table, meta.get('trials', 0))}"
    header += "".join(f"\n{line}" for line in _noise_lines(table, meta))
    table = with_noise_columns(table, meta.get("objectives", []), meta.get("enqueued"))
    if not args.all_columns and meta:
        keep = ["number", "state", "hand_picked"]
        for objective in meta.get("objectives", []):  # with folds: the spread beside the mean
            metric = objective["metric"]
            keep += [metric, f"{metric}_std", f"{metric}_se"]
        keep += ["folds"]
        keep += [c for c in table.columns if str(c).startswith("test_")]
        keep += [c for c in table.columns if c in meta.get("searched", {})]
        keep += ["duration_s", "device", "retry_of", "fail_reason"]
        table = table[[c for c in keep if c in table.columns]]
        if "retry_of" in table and table["retry_of"].isna().all():
            table = table.drop(columns="retry_of")
    if args.top:
        table = table.head(args.top)
    table = _with_ensemble_row(table, read_ensemble(run_dir), meta)
    table = _whole_numbers_as_ints(table, [*meta.get("searched", {}), "retry_of", "folds"])
    with pandas().option_context(
        "display.max_columns", None, "display.width", 200, "display.max_colwidth", 60
    ):
        body = table.to_string(index=False) if not table.empty else "(no trials yet)"
    return f"{header}\n{body}"


def _noise_lines(table, meta) -> list[str]:
    """Under ``show``'s header: the trials whose gap to the best is noise, and how the best
    compares with the hand-picked trial."""
    objectives = meta.get("objectives", [])
    if len(objectives) != 1 or table.empty:
        return []
    lines = []
    close = within_noise_of_best(table, objectives[0])
    if close is not None:
        best = table[table["state"] == "complete"].iloc[0]
        error = short_number(trial_error(best, objectives[0]["metric"]))
        trials = ", ".join(f"#{n}" for n in close) or "none"
        lines.append(
            f"within noise of the best, #{int(best['number'])} (gap under two standard "
            f"errors; its own is {error}): {trials}"
        )
    versus = compare_with_hand_picked(table, objectives, int(meta.get("enqueued") or 0))
    if versus is not None:
        lines.append(versus.validation_line())
    return lines


def _with_ensemble_row(table, record, meta):
    """The table with the study's ensemble (``harness ensemble``) as a last row of its own:
    its validation and test figures in the trials' columns, its members as its state."""
    if record is None or table.empty:
        return table
    pd = pandas()
    members = "+".join(f"#{m['trial']}" for m in record["members"] if m["weight"] > 0)
    row: dict = {"number": "ensemble", "state": members}
    for objective in meta.get("objectives", []):
        row[objective["metric"]] = record["validation"].get(
            objective["metric"].removeprefix("val_")
        )
    for name, value in ((record.get("test") or {}).get("ensemble") or {}).items():
        if f"test_{name}" in table.columns:
            row[f"test_{name}"] = value
    return pd.concat([table.astype({"number": object}), pd.DataFrame([row])], ignore_index=True)


def _whole_numbers_as_ints(table, columns):
    """Parameter columns of whole numbers print as ints (``16``, not ``16.0``) even when a
    waiting or failed row leaves a gap (pandas then holds them as floats)."""
    pd = pandas()
    table = table.copy()
    for column in columns:
        if column not in table.columns or not pd.api.types.is_float_dtype(table[column]):
            continue
        known = table[column].dropna()
        if not known.empty and (known == known.round()).all() and (known.abs() < 2**53).all():
            table[column] = table[column].astype("Int64")
    return table
