"""Measure the chosen trial(s) once on the test split: ``harness evaluate STUDY [--top K]``.

Trials are selected on the validation split; the test split is touched only
here, once, for the best trial (the top K with ``--top``, every Pareto-optimal
trial of a multi-objective study) and the best hand-picked (``[[enqueue]]``) one,
which the best is compared with. The figures land in ``test.json``, and from
there in ``trials.csv`` (``test_<metric>`` columns), ``best.json``, the model
cards, ``harness show``, the HTML report and TensorBoard (``final/test_*``).

The worker that runs a study's last trial measures it (:func:`evaluate_when_done`,
TensorFlow already loaded); the orchestrator measures in a fresh process only what
is still missing, and a trial measured once is not measured again.
"""

from __future__ import annotations

import contextlib
import json
import logging
import multiprocessing as mp
import os
import signal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.context import StudyContext, TrialContext
from harness.devices import configure_tensorflow
from harness.ensemble import build_wanted_ensemble, ensemble_wanted
from harness.errors import HarnessError
from harness.files import write_text_atomic
from harness.fit_inputs import train_params
from harness.logs import configure_logging, log_to_file
from harness.options import apply_options
from harness.pipeline import load_dataset
from harness.plugins import load_plugins
from harness.quiet import start_tensorflow
from harness.results import (
    BEST_CARD_FILE,
    BEST_MODEL_FILE,
    FINISHED_STATES,
    TEST_FILE,
    build_table,
    hand_picked_in,
    read_meta,
    read_test_results,
    saved_model_in_memory,
    trial_model_path,
    write_test_results,
)
from harness.smoke import SMOKE_NOTE, smoke_spec, smoke_test_split
from harness.study import load_study

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

#: What test.json says when the study selected trials on the test split itself.
BIASED_NOTE = (
    "validation = 'test': trials were selected on the test split, so these test figures "
    "are optimistic, not an unbiased estimate"
)
UNBIASED_NOTE = "measured once on the test split, after selection on the validation split"
#: How long a stopped evaluation process has to end, after SIGINT and after terminate.
STOP_SECONDS = 5.0


def study_of_run(run_dir: Path, extra_plugins, purpose: str):
    """``(meta, plugins, spec)`` of the finished study in ``run_dir``, loaded from the study
    file its ``study.json`` names with the same ``--set`` values and profile (a ``--smoke``
    run's spec stays smoke-sized); one line when that file is gone. ``purpose`` completes
    "restore it to ...", e.g. "evaluate (its dataset table says where the test split is)"."""
    meta = read_meta(run_dir)
    study_file = meta.get("study_file")
    if not study_file or not Path(study_file).is_file():
        raise HarnessError(
            f"{run_dir}/study.json names the study file {study_file!r}, which is gone; "
            f"restore it to {purpose}"
        )
    plugins = load_plugins(list(extra_plugins))
    spec = load_study(study_file, plugins, meta.get("overrides") or {}, meta.get("profile"))
    if meta.get("smoke"):  # a --smoke run's test split stays smoke-sized
        spec = smoke_spec(spec)
    return meta, plugins, spec


def chosen_trials(
    table: pd.DataFrame, objectives: list[dict[str, str]], top: int = 1, enqueued: int = 0
):
    """Numbers of the trials to measure: the ``top`` best complete ones, or every
    Pareto-optimal one when there are several objectives. With ``enqueued`` hand-picked
    trials (``[[enqueue]]``), the best complete one of them too: the search's best is
    compared with it on the test split as well (measured, never chosen by it)."""
    complete = table[table["state"] == "complete"] if not table.empty else table
    if complete.empty:
        return []
    if len(objectives) == 1:
        numbers = [int(n) for n in complete["number"].head(top)]
        picked = complete[complete["number"].isin(hand_picked_in(table, enqueued))]
        if not picked.empty and int(picked["number"].iloc[0]) not in numbers:
            numbers.append(int(picked["number"].iloc[0]))
        return numbers
    signs = [1 if o["direction"] == "maximize" else -1 for o in objectives]
    points = {
        int(row["number"]): [
            sign * float(row[o["metric"]]) for sign, o in zip(signs, objectives, strict=True)
        ]
        for _, row in complete.iterrows()
    }

    def dominated(n: int) -> bool:
        mine = points[n]
        return any(
            all(a >= b for a, b in zip(other, mine, strict=True)) and other != mine
            for m, other in points.items()
            if m != n
        )

    return sorted(n for n in points if not dominated(n))


def model_for(run_dir: Path, number: int) -> tuple[Path, Path] | None:
    """(model, card) saved for trial ``number``: ``models/trial-NNNN.keras`` or, for the best
    trial, ``best.keras``; None when neither was kept."""
    kept = trial_model_path(run_dir, number)
    if kept.is_file():
        return kept, kept.with_suffix(".json")
    best, card = run_dir / BEST_MODEL_FILE, run_dir / BEST_CARD_FILE
    if best.is_file() and card.is_file():
        try:
            if json.loads(card.read_text(encoding="utf-8")).get("trial") == number:
                return best, card
        except ValueError:
            return None
    return None


def evaluate_trials(spec: Any, plugins: Any, run_dir: Path, numbers: list[int]) -> dict:
    """Evaluate each trial's saved model on the test split; write ``test.json`` and the
    cards, fire ``harness_test_evaluated``. Returns trial number -> test metrics."""
    import keras  # lazy: imports TensorFlow

    study = StudyContext(spec, run_dir)
    results: dict[int, dict[str, float]] = {}
    biased = False
    for number in numbers:
        found = model_for(run_dir, number)
        if found is None:
            log.warning(
                "trial #%s: no saved model (only the best [study].keep_models trials keep "
                "theirs); not evaluated on the test split",
                number,
            )
            continue
        model_path, card_path = found
        card = json.loads(card_path.read_text(encoding="utf-8"))
        params = dict(card.get("params") or {})
        context = TrialContext(study, number, params, worker="evaluate")
        dataset = load_dataset(context)
        if dataset.test is None:
            log.warning(
                "dataset %r has no test split; nothing to evaluate (give it a test split to "
                "get an unbiased final figure)",
                spec.dataset.name,
            )
            return results
        biased = biased or dataset.info.preprocessing.get("validation_source") == "test"
        model = saved_model_in_memory(run_dir, number)
        if model is None:
            model = keras.models.load_model(model_path, compile=True)
        test = smoke_test_split(dataset.test) if spec.smoke else dataset.test
        examples = split_size(test, count=spec.smoke)
        batches = dataset.model_batches(test.batch(train_params(params).batch_size))
        measured = model.evaluate(batches, verbose=0, return_dict=True)
        metrics = {f"test_{name}": float(value) for name, value in measured.items()}
        results[number] = metrics
        _add_to_card(card_path, metrics)
        if model_path.name != BEST_MODEL_FILE:
            best_card = run_dir / BEST_CARD_FILE
            if best_card.is_file() and _card_trial(best_card) == number:
                _add_to_card(best_card, metrics)
        plugins.test_evaluated(study, number, metrics)
    if results:
        write_test_results(run_dir, results, _note(spec, biased, examples), examples)
    return results


def _note(spec: Any, biased: bool, examples: int | None) -> str:
    """What ``test.json`` says its figures are: smoke-sized, biased or unbiased."""
    if spec.smoke:
        return SMOKE_NOTE.format(examples=examples)
    return BIASED_NOTE if biased else UNBIASED_NOTE


def split_size(split: Any, count: bool = False) -> int | None:
    """Examples in an unbatched ``tf.data`` split: as tf.data knows it, else counted when
    ``count`` (a small split), else None."""
    known = int(split.cardinality())
    if known >= 0:
        return known
    return sum(1 for _ in split) if count else None


def _card_trial(path: Path) -> int | None:
    try:
        return json.loads(path.read_text(encoding="utf-8")).get("trial")
    except ValueError:
        return None


def _add_to_card(path: Path, metrics: dict[str, float]) -> None:
    card = json.loads(path.read_text(encoding="utf-8"))
    card["test"] = metrics
    write_text_atomic(path, json.dumps(card, indent=2, default=str) + "\n")


def _evaluate_child(study_path: str, options: Any, run_dir: str, numbers: list[int], env):
    """Entry point of the evaluation process (spawned: the orchestrator never trains).
    Ctrl-C ends it quietly: the orchestrator says what was not measured."""
    try:
        os.environ.update(env)
        configure_logging()
        log_to_file(Path(run_dir))
        plugins = load_plugins(options.extra_plugins)
        spec = apply_options(
            load_study(study_path, plugins, options.overrides, options.profile), options
        )
        start_tensorflow(configure_tensorflow)
        if numbers:
            evaluate_trials(spec, plugins, Path(run_dir), numbers)
        if ensemble_wanted(spec, Path(run_dir)):
            build_wanted_ensemble(spec, plugins, Path(run_dir))
    except HarnessError as exc:
        log.warning("test evaluation: %s", exc)
        raise SystemExit(2) from None
    except KeyboardInterrupt:
        raise SystemExit(130) from None


def testable(run_dir: Path, numbers: list[int]) -> list[int]:
    """The trials among ``numbers`` with a saved model whose dataset has a test split."""
    keep = []
    for number in numbers:
        found = model_for(run_dir, number)
        if found is None:
            continue
        try:
            card = json.loads(found[1].read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if card.get("has_test_split") is not False:
            keep.append(number)
    return keep


def still_to_measure(run_dir: Path, numbers: list[int]) -> list[int]:
    """Those of ``numbers`` not in ``test.json`` yet: each trial is measured once."""
    measured = read_test_results(run_dir)
    return [n for n in numbers if n not in measured]


def evaluate_in_process_or_child(
    spec: Any, plugins: Any, options: Any, run_dir: Path, numbers: list[int], env: dict
) -> dict[int, dict[str, float]]:
    """Run :func:`evaluate_trials` here (``--in-process``) or in a fresh process pinned like
    the first worker, for those of ``numbers`` not measured yet; returns what
    ``test.json`` then holds for ``numbers``. Trials without a saved model or whose
    dataset has no test split are skipped."""
    wanted = testable(run_dir, numbers)
    numbers = still_to_measure(run_dir, wanted)  # a worker may have measured them already
    ensemble = ensemble_wanted(spec, run_dir)  # [study].ensemble, when not built yet
    if (numbers or ensemble) and options.in_process:
        if numbers:
            evaluate_trials(spec, plugins, run_dir, numbers)
        if ensemble:
            build_wanted_ensemble(spec, plugins, run_dir)
    elif numbers or ensemble:
        process = mp.get_context("spawn").Process(
            target=_evaluate_child,
            args=(str(spec.path), options, str(run_dir), numbers, env),
            name="harness-evaluate",
        )
        process.start()
        try:
            process.join()
        except KeyboardInterrupt:
            _stop(process)
            raise
    tests = read_test_results(run_dir)
    return {n: tests[n] for n in wanted if n in tests}


def _stop(process: Any) -> None:
    """End the evaluation process on Ctrl-C: SIGINT (a SIGTERM sent to ``harness run``
    alone did not reach it), a few seconds, then terminate."""
    if process.is_alive() and process.pid is not None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGINT)
        process.join(STOP_SECONDS)
    if process.is_alive():
        process.terminate()
    process.join(STOP_SECONDS)


def evaluate_when_done(spec: Any, plugins: Any, run_dir: Path, records: list, budget: int):
    """In a worker that has just run the study's last trial (TensorFlow already loaded):
    measure the chosen trial(s) here, which spares the orchestrator a fresh process.
    Nothing happens while a trial still runs, before the budget is met, or when another
    worker is already measuring (``.evaluating``, created atomically)."""
    if any(r.state in ("running", "waiting") for r in records):
        return
    counted = [r for r in records if r.state in FINISHED_STATES and r.counted]
    if len(counted) < budget:
        return
    objectives = [o.model_dump() for o in spec.objectives]
    table = build_table(records, objectives)
    chosen = testable(run_dir, chosen_trials(table, objectives, enqueued=len(spec.enqueue)))
    numbers = still_to_measure(run_dir, chosen)
    ensemble = ensemble_wanted(spec, run_dir)  # [study].ensemble, when not built yet
    if not numbers and not ensemble:
        return
    lock = run_dir / ".evaluating"
    try:
        handle = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return
    try:
        if numbers:
            evaluate_trials(spec, plugins, run_dir, numbers)
        if ensemble:
            build_wanted_ensemble(spec, plugins, run_dir)
    finally:
        os.close(handle)
        lock.unlink(missing_ok=True)


def test_note(run_dir: Path) -> str | None:
    """What ``test.json`` says about its figures (None when nothing was measured)."""
    return _test_file(run_dir).get("note")


def test_examples(run_dir: Path) -> int | None:
    """How many test examples ``test.json``'s figures were measured on (None: unknown)."""
    examples = _test_file(run_dir).get("examples")
    return examples if isinstance(examples, int) else None


def _test_file(run_dir: Path) -> dict[str, Any]:
    path = run_dir / TEST_FILE
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}
