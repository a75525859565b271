"""Search quality: harness (Optuna, its default sampler and pruner) against KerasTuner's
RandomSearch and Hyperband, run by KerasTuner itself, on the same space, data and budget.

The space: the ``cnn`` model with 1-2 Conv2D(filters, 3, valid, relu) + MaxPool(2)
blocks, filters in {16, 32, 64} (the same in both blocks), one Dense(units, relu)
layer with units in {32, 64, 128, 256}, Dropout(dropout) with dropout in [0, 0.5]
after it, and Dense(10, softmax); adam at 0.001, sparse categorical cross-entropy,
batch 32, ``--epochs`` epochs per trial (KerasTuner's Hyperband gives its trials
fewer epochs, up to ``max_epochs = --epochs``, as Hyperband does).

The data: the first ``--limit + --validation`` MNIST training images of
``../shared/data/mnist``, split into ``--limit`` training and ``--validation``
validation images (12,000 and 2,000 by default) by ``harness.data.stratified_split``
with the run's seed: the mnist plugin's own stratified split, which the KerasTuner
side calls too, so both sides train and validate on the same images. Pixels are
scaled to [0, 1] as float32 on both sides. harness feeds a tf.data pipeline
(shuffle buffer 10,000, the harness default); KerasTuner gets the numpy arrays
(Keras shuffles them fully each epoch).

Each run is a fresh process, so both sides pay TensorFlow's start-up inside the
budget: ``harness run STUDY --timeout BUDGET --seed SEED`` with a study of 1,000
trials (the timeout ends it, not the trial count) whose trial #0 is the course's
MNIST convnet (an ``[[enqueue]]``, as in every course study), and ``python
bench/search_quality.py --kerastuner-child JOB`` for RandomSearch (max_trials
1,000) and Hyperband (factor 3, hyperband_iterations 1,000, so the budget ends it
too). The KerasTuner child uses the CPU threads a harness worker uses (intra-op:
all cores; inter-op: up to 2). Seeds: harness ``--seed SEED`` (sampler, split, and
Keras seed SEED + trial number); KerasTuner ``seed=SEED`` (oracle) and
``keras.utils.set_random_seed(SEED)`` once at the start.

The budget counts from the moment the parent process starts each run. harness
starts no trial after its ``--timeout`` (which counts from a little later, once
its own imports are done), but lets a running trial finish; KerasTuner starts no
trial after the budget (``pre_create_trial``) and a callback stops a running one
at the first batch past it. On both sides only trials that finished within the
budget count: a trial cut or finished after it is reported as "over budget" and
its accuracy is not used.

Reported per tool and seed: the best validation accuracy within the budget, both
as the accuracy of the model at the end of a trial ("final", what harness's
objective is: it evaluates the trained model) and as the best epoch of any
trial ("any epoch", what KerasTuner's objective is: it keeps the best epoch's
checkpoint); trials finished (harness: complete and pruned separately; pruned
trials do not compete for the best, Hyperband's short rounds do, as each tool
counts them); and the seconds from the start of the run until a finished trial's
final accuracy first reached 0.98. Then, per seed, whether harness's best is at
least both KerasTuner bests, and the ratio of harness's time to 0.98 against
RandomSearch's (the goal is at most 1/3). The parameter count of every trial's
model, on both sides, is checked against the same formula for the architecture.
Not a test: figures depend on the machine.

    .venv/bin/python bench/search_quality.py   # --seeds 0 1 2 --budget 360 --epochs 4
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "mnist"
TOOLS = ("harness", "random", "hyperband")
TARGET = 0.98
STUDY_NAME = "search_quality"
CONV_LAYERS = (1, 2)
FILTERS = (16, 32, 64)
UNITS = (32, 64, 128, 256)
DROPOUT = (0.0, 0.5)
BATCH_SIZE = 32
LEARNING_RATE = 0.001

STUDY = """
[study]
name = "{name}"
trials = 1000
seed = {seed}

[dataset]
name = "mnist"
path = {data}
limit = {limit}
validation_split = {split!r}

[model]
name = "cnn"
conv_layers = {{int = [{conv[0]}, {conv[1]}]}}
filters = {{choice = {filters}}}
units = {{choice = {units}}}
dropout = {{float = [{dropout[0]}, {dropout[1]}]}}

[train]
epochs = {epochs}
batch_size = {batch_size}
optimizer = "adam"
learning_rate = {learning_rate}

# The course's MNIST convnet (two 64-filter blocks, Dense(128), no dropout) as trial #0,
# as every course study in studies/ enqueues its course values.
[[enqueue]]
model.conv_layers = 2
model.filters = 64
model.units = 128
model.dropout = 0.0
"""


def cnn_params(conv_layers: int, filters: int, units: int) -> int:
    """Parameters of the network both sides build (valid 3x3 convs, 2x2 pools, one hidden
    Dense layer, 10 outputs) on 28x28x1 images."""
    size, channels, total = 28, 1, 0
    for _ in range(conv_layers):
        total += (9 * channels + 1) * filters
        size, channels = (size - 2) // 2, filters
    flat = size * size * channels
    return total + (flat + 1) * units + (units + 1) * 10


def split_share(train: int, validation: int) -> float:
    """The ``validation_split`` that holds out exactly ``validation`` of ``train + validation``."""
    share = validation / (train + validation)
    if int(round((train + validation) * share)) != validation:
        raise SystemExit(f"cannot hold out exactly {validation} of {train + validation} images")
    return share


# --------------------------------------------------------------------------- harness side


def run_harness(folder: Path, seed: int, args) -> dict:
    """One ``harness run`` of the study for ``args.budget`` seconds; its trials from the journal."""
    study = folder / f"harness-{seed}.toml"
    study.write_text(
        STUDY.format(
            name=STUDY_NAME,
            seed=seed,
            data=json.dumps(str(DATA)),
            limit=args.limit + args.validation,
            split=split_share(args.limit, args.validation),
            conv=CONV_LAYERS,
            filters=list(FILTERS),
            units=list(UNITS),
            dropout=DROPOUT,
            epochs=args.epochs,
            batch_size=BATCH_SIZE,
            learning_rate=LEARNING_RATE,
        )
    )
    runs = folder / f"runs-harness-{seed}"
    command = [
        sys.executable, "-m", "harness", "run", str(study), "--runs-dir", str(runs),
        "--no-progress", "--timeout", str(args.budget), "--seed", str(seed),
    ]
    launched = time.time()
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=False)
    wall = time.time() - launched
    if done.returncode != 0:
        raise SystemExit(f"harness run failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return {"wall": wall, "trials": harness_trials(runs / STUDY_NAME / "optuna.journal", launched)}


def harness_trials(journal: Path, launched: float) -> list[dict]:
    """Every finished trial of the run: state, end time since launch, final and best-epoch
    val_accuracy, parameters and parameter count (all from the Optuna journal)."""
    import optuna
    from optuna.storages.journal import JournalFileBackend

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = optuna.storages.JournalStorage(JournalFileBackend(str(journal)))
    study = optuna.load_study(study_name=STUDY_NAME, storage=storage)
    states = {
        optuna.trial.TrialState.COMPLETE: "complete",
        optuna.trial.TrialState.PRUNED: "pruned",
        optuna.trial.TrialState.FAIL: "failed",
    }
    trials = []
    for trial in study.get_trials(deepcopy=False):
        if trial.state not in states or trial.user_attrs.get("harness:surplus"):
            continue
        history = json.loads(trial.user_attrs.get("history", "{}"))
        epochs = [float(v) for v in history.get("val_accuracy", [])]
        final = trial.value if trial.state == optuna.trial.TrialState.COMPLETE else None
        trials.append({
            "state": states[trial.state],
            "end": trial.datetime_complete.timestamp() - launched,
            "final": final,
            "peak": max(epochs) if epochs and final is not None else None,
            "params": trial.user_attrs.get("metric:params"),
            "config": {k.removeprefix("model."): v for k, v in trial.params.items()},
        })
    return sorted(trials, key=lambda t: t["end"])


# ----------------------------------------------------------------------- KerasTuner side


def run_kerastuner(folder: Path, tool: str, seed: int, args) -> dict:
    """One KerasTuner search (``random`` or ``hyperband``) in a fresh process."""
    out = folder / f"{tool}-{seed}.json"
    launched = time.time()
    job = {
        "tool": tool, "seed": seed, "budget": args.budget, "epochs": args.epochs,
        "limit": args.limit, "validation": args.validation, "launched": launched,
        "directory": str(folder / f"kt-{tool}-{seed}"), "out": str(out),
    }
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "TF_FORCE_GPU_ALLOW_GROWTH": "true"}
    done = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--kerastuner-child", json.dumps(job)],
        cwd=REPO, capture_output=True, text=True, check=False, env=env,
    )
    wall = time.time() - launched
    if done.returncode != 0 or not out.is_file():
        raise SystemExit(f"KerasTuner {tool} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return {"wall": wall, "trials": json.loads(out.read_text())}


def kerastuner_child(job: dict) -> None:
    """The KerasTuner side of one run (``--kerastuner-child``): writes its trials to ``out``."""
    import gzip

    import numpy as np

    from harness.data import stratified_split  # the mnist plugin's split, numpy only

    launched, deadline = job["launched"], job["launched"] + job["budget"]

    def idx(name: str, offset: int) -> np.ndarray:
        with gzip.open(DATA / name, "rb") as handle:
            return np.frombuffer(handle.read(), dtype=np.uint8, offset=offset)

    total = job["limit"] + job["validation"]
    x = idx("train-images-idx3-ubyte.gz", 16).reshape(-1, 28, 28, 1)[:total]
    y = idx("train-labels-idx1-ubyte.gz", 8)[:total].astype("int32")
    x = x.astype("float32") / np.float32(255.0)
    train, val = stratified_split(y, split_share(job["limit"], job["validation"]), job["seed"])

    import tensorflow as tf

    threads = os.cpu_count() or 1  # as a lone harness worker (harness.devices)
    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(max(1, min(2, threads)))
    import keras
    import keras_tuner

    keras.utils.set_random_seed(job["seed"])
    current: dict = {}
    trials: list[dict] = []

    class BudgetSpent(Exception):
        """Raised before a new trial once the budget is spent; ends the search."""

    class Budget(keras.callbacks.Callback):
        """Stops the running trial at the first batch past the budget; records each epoch."""

        def on_train_begin(self, logs=None):
            current["params"] = self.model.count_params()

        def on_train_batch_end(self, batch, logs=None):
            if time.time() > deadline:
                current["cut"] = True
                self.model.stop_training = True

        def on_epoch_end(self, epoch, logs=None):
            current["epochs"].append(float((logs or {}).get("val_accuracy", math.nan)))

    def build(hp):
        conv_layers = hp.Int("conv_layers", *CONV_LAYERS)
        filters = hp.Choice("filters", list(FILTERS))
        units = hp.Choice("units", list(UNITS))
        dropout = hp.Float("dropout", *DROPOUT)
        # The same layers, in the same order, as plugins/models/cnn.py with its defaults.
        inputs = keras.Input(shape=(28, 28, 1), name="input")
        h = inputs
        for index in range(1, conv_layers + 1):
            h = keras.layers.Conv2D(
                filters, 3, padding="valid", activation="relu", name=f"conv_{index}"
            )(h)
            h = keras.layers.MaxPooling2D(2, padding="valid", name=f"pool_{index}")(h)
        h = keras.layers.Flatten(name="flatten")(h)
        h = keras.layers.Dense(units, activation="relu", name="dense_1")(h)
        if dropout:
            h = keras.layers.Dropout(dropout, name="dense_dropout_1")(h)
        outputs = keras.layers.Dense(10, activation="softmax", name="output")(h)
        model = keras.Model(inputs, outputs, name="cnn")
        model.compile(
            optimizer=keras.optimizers.Adam(learning_rate=LEARNING_RATE),
            loss="sparse_categorical_crossentropy",
            metrics=["accuracy"],
        )
        return model

    class Timed:
        """Mixed into a KerasTuner tuner: no trial after the budget; each trial recorded."""

        def pre_create_trial(self):
            if time.time() >= deadline:
                raise BudgetSpent
            super().pre_create_trial()

        def on_trial_begin(self, trial):
            current.clear()
            current.update(epochs=[], cut=False, params=None)
            super().on_trial_begin(trial)

        def on_trial_end(self, trial):
            super().on_trial_end(trial)
            epochs = current["epochs"]
            completed = str(trial.status).upper().endswith("COMPLETED")
            values = trial.hyperparameters.values
            trials.append({
                "state": "complete" if completed and epochs else "failed",
                "end": time.time() - launched,
                "cut": current["cut"],
                "final": epochs[-1] if completed and epochs else None,
                "peak": max(epochs) if completed and epochs else None,
                "score": trial.score,
                "params": current["params"],
                "config": {k: values[k] for k in ("conv_layers", "filters", "units", "dropout")},
                "epochs": values.get("tuner/epochs", job["epochs"]),
                "message": (trial.message or "")[-500:] if not completed else None,
            })

    common = {
        "objective": "val_accuracy",
        "seed": job["seed"],
        "directory": job["directory"],
        "project_name": STUDY_NAME,
        "overwrite": True,
    }
    if job["tool"] == "random":
        tuner = type("Random", (Timed, keras_tuner.RandomSearch), {})(
            build, max_trials=1000, **common
        )
    else:
        tuner = type("Band", (Timed, keras_tuner.Hyperband), {})(
            build, max_epochs=job["epochs"], factor=3, hyperband_iterations=1000, **common
        )
    try:
        tuner.search(
            x[train], y[train], epochs=job["epochs"], batch_size=BATCH_SIZE,
            validation_data=(x[val], y[val]), callbacks=[Budget()], verbose=0,
        )
    except BudgetSpent:
        pass
    Path(job["out"]).write_text(json.dumps(trials))


# ------------------------------------------------------------------------------ summary


def summarize(trials: list[dict], budget: float) -> dict:
    """Best accuracies, counts and time to ``TARGET`` over the trials finished in the budget."""
    inside = [t for t in trials if t["end"] <= budget and not t.get("cut")]
    complete = [t for t in inside if t["state"] == "complete" and t["final"] is not None]
    reached = [t["end"] for t in complete if t["final"] >= TARGET]
    return {
        "final": max((t["final"] for t in complete), default=None),
        "peak": max((t["peak"] for t in complete if t["peak"] is not None), default=None),
        "complete": len(complete),
        "pruned": sum(t["state"] == "pruned" for t in inside),
        "failed": sum(t["state"] == "failed" for t in inside),
        "over": len(trials) - len(inside),
        "to_target": min(reached, default=None),
    }


def check_params(tool: str, trials: list[dict]) -> tuple[int, list[str]]:
    """How many trials' parameter counts match :func:`cnn_params`, and the mismatches."""
    matched, wrong = 0, []
    for t in trials:
        if t["params"] is None:
            continue
        c = t["config"]
        expected = cnn_params(int(c["conv_layers"]), int(c["filters"]), int(c["units"]))
        if int(t["params"]) == expected:
            matched += 1
        else:
            wrong.append(f"{tool} {c}: {int(t['params'])} != {expected}")
    return matched, wrong


def fmt(value, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def when(seconds: float | None) -> str:
    return "never" if seconds is None else f"{seconds:.1f} s"


def main() -> None:
    """Run every tool for every seed (tools interleaved) and print the figures."""
    if len(sys.argv) == 3 and sys.argv[1] == "--kerastuner-child":
        kerastuner_child(json.loads(sys.argv[2]))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--budget", type=float, default=360.0, help="seconds per run")
    parser.add_argument("--epochs", type=int, default=4, help="epochs per trial")
    parser.add_argument("--tools", nargs="+", choices=TOOLS, default=list(TOOLS))
    parser.add_argument("--limit", type=int, default=12_000, help="training images")
    parser.add_argument("--validation", type=int, default=2_000, help="validation images")
    args = parser.parse_args()
    if not DATA.is_dir():
        raise SystemExit(f"{DATA} is missing: the benchmark needs the MNIST IDX files there")
    split_share(args.limit, args.validation)
    from harness.backends.optuna import Config

    defaults = Config()
    warmup = defaults.warmup_epochs or max(1, args.epochs // 2)
    print(
        f"harness defaults: sampler {defaults.sampler} (multivariate, group, "
        f"{defaults.startup_trials} start-up trials), pruner {defaults.pruner} "
        f"({defaults.startup_trials} start-up trials, warm-up "
        f"{defaults.warmup_epochs or 'half the epochs'}: {warmup} epochs here, patience "
        f"{defaults.patience_epochs} epoch)",
        flush=True,
    )
    print(
        f"budget {args.budget:g} s per run, {args.epochs} epochs per trial, "
        f"{args.limit} training + {args.validation} validation images, seeds {args.seeds}",
        flush=True,
    )
    results: dict[tuple[int, str], dict] = {}
    params_seen: dict[tuple, dict[str, int]] = {}
    mismatches: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        for position, seed in enumerate(args.seeds):
            shift = position % len(args.tools)  # no tool always runs first
            for tool in args.tools[shift:] + args.tools[:shift]:
                if tool == "harness":
                    run = run_harness(Path(tmp), seed, args)
                else:
                    run = run_kerastuner(Path(tmp), tool, seed, args)
                figures = summarize(run["trials"], args.budget)
                results[seed, tool] = figures
                matched, wrong = check_params(tool, run["trials"])
                mismatches += wrong
                for t in run["trials"]:
                    if t["params"] is not None:
                        c = t["config"]
                        key = (int(c["conv_layers"]), int(c["filters"]), int(c["units"]))
                        params_seen.setdefault(key, {})[tool] = int(t["params"])
                pruned = f", {figures['pruned']} pruned" if tool == "harness" else ""
                print(
                    f"seed {seed} {tool:9s}: best {fmt(figures['final'])} final, "
                    f"{fmt(figures['peak'])} any epoch; {figures['complete']} complete{pruned}, "
                    f"{figures['failed']} failed, {figures['over']} over budget; "
                    f"{TARGET} at {when(figures['to_target'])}; whole run "
                    f"{run['wall']:.1f} s; parameter counts match the formula for "
                    f"{matched} trials",
                    flush=True,
                )
    print()
    print(
        "| seed | tool | best val_accuracy (final) | best (any epoch) | complete | pruned "
        f"| failed | over budget | s to {TARGET} |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for (seed, tool), f in results.items():
        pruned = str(f["pruned"]) if tool == "harness" else "-"
        to_target = when(f["to_target"]).removesuffix(" s")
        print(
            f"| {seed} | {tool} | {fmt(f['final'])} | {fmt(f['peak'])} | {f['complete']} "
            f"| {pruned} | {f['failed']} | {f['over']} | {to_target} |"
        )
    print()
    print("parameter counts (conv_layers, filters, units -> per tool; formula):")
    for key in sorted(params_seen):
        seen = ", ".join(f"{tool} {count:,}" for tool, count in sorted(params_seen[key].items()))
        print(f"  {key}: {seen}; formula {cnn_params(*key):,}")
    if mismatches:
        print("MISMATCHED parameter counts:\n  " + "\n  ".join(mismatches))
    if "harness" not in args.tools or len(args.tools) == 1:
        return
    print()
    for seed in args.seeds:
        mine = results[seed, "harness"]
        for key, label in (("final", "final"), ("peak", "any epoch")):
            others = {t: results[seed, t][key] for t in args.tools if t != "harness"}
            verdict = all(
                mine[key] is not None and (v is None or mine[key] >= v) for v in others.values()
            )
            listing = ", ".join(f"{t} {fmt(v)}" for t, v in others.items())
            print(
                f"seed {seed}: harness best ({label}) {fmt(mine[key])} >= {listing}: "
                f"{'yes' if verdict else 'no'}"
            )
        if "random" in args.tools:
            ours, theirs = mine["to_target"], results[seed, "random"]["to_target"]
            if ours is not None and theirs is not None:
                ratio = f"{ours / theirs:.2f}x ({'<=' if ours * 3 <= theirs else '>'} 1/3)"
            elif ours is not None:
                ratio = "harness reached it, RandomSearch never did"
            else:
                ratio = "harness never reached it"
            print(f"seed {seed}: time to {TARGET}, harness / RandomSearch: {ratio}")


if __name__ == "__main__":
    main()
