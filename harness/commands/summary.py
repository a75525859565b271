"""How a study went, in a few lines: the summary ``run`` and ``worker`` print at the end,
and the trial counts and figures ``show`` and ``evaluate`` print too."""

from __future__ import annotations

import json
from pathlib import Path

from harness.evaluate import test_examples, test_note
from harness.noise import HandPicked, compare_with_hand_picked
from harness.program import command, sibling
from harness.results import (
    BEST_CARD_FILE,
    FINISHED_STATES,
    counted_mask,
    finished_counted,
    read_ensemble,
)

NO_TEST_SPLIT = (
    "no test split in this dataset: the figures above were measured on the data that chose "
    "the model (give the dataset a test split for an unbiased one)"
)


def summary(outcome, spec) -> str:
    """A few lines on how the study went: counts, best value, test figure, where the files
    are."""
    table = outcome.table
    lines = [f"study {spec.name}: {counts(table, spec.study.trials)}"]
    complete = table[table["state"] == "complete"] if not table.empty else table
    if not complete.empty:
        best = complete.iloc[0]
        values = ", ".join(f"{o.metric}={best[o.metric]:.4f}" for o in spec.objectives)
        lines.append(f"best trial #{int(best['number'])}: {values}")
        versus = _hand_picked(outcome, spec)
        if versus is not None:
            lines.append(versus.validation_line())
        lines.extend(_test_lines(outcome, spec, versus))
        lines.extend(_ensemble_lines(outcome.run_dir, spec))
    elif not table.empty:
        counted = table[counted_mask(table)]
        failed = counted[counted["state"] == "failed"]
        reasons = failed["fail_reason"].dropna().value_counts()
        if not reasons.empty and len(failed) == len(counted):
            lines.append(f"every trial failed; most common reason: {reasons.index[0]}")
        elif (
            not finished_counted(table).any()
            and spec.study.timeout
            and not getattr(outcome, "interrupted", False)
            and not getattr(outcome, "running_elsewhere", 0)
        ):
            lines.append(
                f"no trial finished: the --timeout of {spec.study.timeout:g} s ended the study "
                "before one could; give it more time"
            )
    words = ["show", spec.name]
    runs_dir = Path(outcome.run_dir).parent
    if runs_dir.resolve() != Path("runs").resolve():
        words += ["--runs-dir", str(runs_dir)]
    show = command(*words)
    elsewhere = getattr(outcome, "running_elsewhere", 0)
    if elsewhere:
        lines.append(
            f"this machine stopped at its deadline with {elsewhere} "
            f"trial{'s' if elsewhere > 1 else ''} of the budget still running on other "
            f"machines: the study is not over ({show} once they finish)"
        )
    lines.append(f"results: {outcome.run_dir}/trials.csv  ({show})")
    lines.append(f"{sibling('tensorboard')} --logdir {outcome.run_dir}/tb")
    return "\n".join(lines)


def counts(table, budget: int) -> str:
    """``8 of 8 trials finished (5 complete, 2 pruned, 1 failed); 1 interrupted, re-run``."""
    if table.empty:
        return "no trials"
    mine = table[finished_counted(table)]
    states = mine["state"].value_counts().to_dict()
    parts = [f"{states[s]} {s}" for s in FINISHED_STATES if s in states]
    text = f"{len(mine)} of {budget} trials finished ({', '.join(parts) or 'none'})"
    if len(mine) > budget:  # a budget lowered on resume (--trials): it was met already
        text = f"{len(mine)} trials finished, over the budget of {budget} ({', '.join(parts)})"
    skipped = int((table["state"].isin(FINISHED_STATES) & ~counted_mask(table)).sum())
    if skipped:
        text += f"; {skipped} interrupted or replaced, not counted"
    running = int((table["state"] == "running").sum())
    if running:
        text += f"; {running} still running"
    return text


def figures(metrics: dict[str, float]) -> str:
    """``test_accuracy=0.9916, test_loss=0.0397``."""
    return ", ".join(f"{name}={value:.4f}" for name, value in sorted(metrics.items()))


def _test_lines(outcome, spec, versus: HandPicked | None = None) -> list[str]:
    """The test-split figures of the measured trial(s), and whether they are unbiased;
    the hand-picked trial's line says how the best compares with it there."""
    tested = getattr(outcome, "tested", None)
    if not tested:
        return [NO_TEST_SPLIT] if _no_test_split(outcome.run_dir) else []
    split = "test split"
    if getattr(spec, "smoke", False):
        examples = test_examples(outcome.run_dir)
        split = f"smoke-sized test split ({examples} examples; not a real figure)"
    lines = []
    first = versus.best if versus is not None else None
    for number, metrics in sorted(tested.items(), key=lambda item: (item[0] != first, item[0])):
        role = ""
        if versus is not None and versus.gap is not None:
            role = {versus.best: " (best)", versus.picked: " (hand-picked)"}.get(number, "")
        line = f"{split}, trial #{number}{role}: {figures(metrics)}"
        if role == " (hand-picked)" and versus.test_line():
            line += f"; {versus.test_line()}"
        lines.append(line)
    note = test_note(outcome.run_dir) or ""
    if "optimistic" in note:
        lines.append(f"warning: {note}")
    return lines


def _ensemble_lines(run_dir, spec) -> list[str]:
    """The ensemble ``[study].ensemble`` asked for: members, weights and figures."""
    record = read_ensemble(Path(run_dir)) if spec.study.ensemble else None
    if record is None:
        return []
    from harness.ensemble import summary_lines  # lazy: numpy, only when there is one

    return summary_lines(record)


def _hand_picked(outcome, spec) -> HandPicked | None:
    """How the best trial compares with the best of the study's enqueued (hand-picked)
    trials (the first ``len([[enqueue]])`` trials, and the re-runs of any of them that
    was interrupted), on the validation split and on the test split, with the noise."""
    objectives = [o.model_dump() for o in spec.objectives]
    return compare_with_hand_picked(
        outcome.table, objectives, len(spec.enqueue), test_examples(outcome.run_dir)
    )


def _no_test_split(run_dir) -> bool:
    """True when the best model's card says its dataset has no test split."""
    try:
        card = json.loads((run_dir / BEST_CARD_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError, TypeError):
        return False
    return isinstance(card, dict) and card.get("has_test_split") is False
