"""What a running study shows and keeps on disk after every trial.

:class:`TrialFeed` turns the stored trials into (1) ``trials.csv``,
``histories.json`` and ``best.json``, rewritten atomically whenever a trial
finishes, and (2) what the terminal shows: a progress bar on a terminal (in a
Jupyter notebook, tqdm's notebook bar), or, when stdout is not a terminal (CI,
``nohup``, a log file) or with ``--no-progress``, one line per finished trial.
Failed trials are always one line each; their tracebacks are in ``harness.log``.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any, TextIO

from tqdm import tqdm

from harness.results import FINISHED_STATES, build_table, write_results


def _value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def trial_line(record: Any, objectives: list[dict[str, str]]) -> str:
    """One line on one finished trial: number, state, objective, parameters, seconds."""
    parts = [f"trial #{record.number}", record.state]
    if record.state == "complete":
        parts.append(
            ", ".join(
                f"{o['metric']}={_value(record.values.get(o['metric']))}" for o in objectives
            )
        )
    elif record.state == "pruned" and record.metrics.get("epochs_run"):
        parts.append(f"at epoch {int(record.metrics['epochs_run'])}")
    if record.params:
        parts.append(" ".join(f"{k}={_value(v)}" for k, v in record.params.items()))
    if record.duration_s is not None:
        parts.append(f"{record.duration_s:.1f}s")
    if record.retry_of is not None:
        parts.append(f"re-runs #{record.retry_of}")
    line = "  ".join(parts)
    if record.state != "complete" and record.fail_reason:
        line += f"  reason: {record.fail_reason}"
    return line


def in_notebook() -> bool:
    """Whether this process is a Jupyter kernel (IPython's kernel app), as ``tqdm.auto``
    tells; a terminal IPython is not one. Its output is no terminal, but shows a bar."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if hasattr(ipython, "get_ipython") else None
    return shell is not None and "IPKernelApp" in getattr(shell, "config", {})


class TrialFeed:
    """Rewrites the results files and reports each trial once, as soon as it has finished."""

    def __init__(
        self,
        spec: Any,
        run_dir: Path,
        *,
        show_progress: bool = True,
        stream: TextIO | None = None,
        log_path: Path | None = None,
    ):
        self.spec = spec
        self.run_dir = run_dir
        self.objectives = [o.model_dump() for o in spec.objectives]
        self.stream = stream or sys.stdout
        self.log_path = log_path
        notebook = stream is None and in_notebook()
        interactive = notebook or bool(getattr(self.stream, "isatty", lambda: False)())
        self.bar_mode = show_progress and interactive
        self.seen: set[int] = set()
        bar = tqdm
        if notebook and self.bar_mode and importlib.util.find_spec("ipywidgets"):
            from tqdm.notebook import tqdm as bar  # a widget; the text bar works without one
        self.bar = bar(
            total=spec.study.trials,
            desc=spec.name,
            unit="trial",
            disable=not self.bar_mode,
            dynamic_ncols=True,
            file=self.stream,
        )

    def prime(self, records: list[Any]) -> None:
        """Take the trials of earlier runs (resume) as already reported; write the files."""
        self.seen.update(r.number for r in records if r.state in FINISHED_STATES)
        self._bar(records)
        write_results(self.run_dir, build_table(records, self.objectives), self.objectives)

    def update(self, records: list[Any]) -> Any:
        """Take the stored trials; write the files and print lines when any has newly
        finished. Returns the results table when it was rewritten, else None."""
        finished = [r for r in records if r.state in FINISHED_STATES]
        new = [r for r in sorted(finished, key=lambda r: r.number) if r.number not in self.seen]
        self._bar(records)
        if not new:
            return None
        self.seen.update(r.number for r in new)
        table = build_table(records, self.objectives)
        write_results(self.run_dir, table, self.objectives)
        for record in new:
            self._report(record)
        return table

    def _bar(self, records: list[Any]) -> None:
        if not self.bar_mode:
            return
        done = sum(1 for r in records if r.state in FINISHED_STATES and r.counted)
        self.bar.n = min(done, self.bar.total)
        values = [
            r.values.get(self.objectives[0]["metric"])
            for r in records
            if r.state == "complete"
        ]
        values = [v for v in values if v is not None]
        if values:
            pick = max if self.objectives[0]["direction"] == "maximize" else min
            self.bar.set_postfix_str(f"best {self.objectives[0]['metric']}={pick(values):.4f}")
        self.bar.refresh()

    def _report(self, record: Any) -> None:
        line = trial_line(record, self.objectives)
        if self.bar_mode:
            if record.state == "failed":
                self.bar.write(line, file=self.stream)
        else:
            print(line, file=self.stream, flush=True)

    def close(self) -> None:
        """Close the progress bar."""
        self.bar.close()
