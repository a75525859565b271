"""Search quality: harness against KerasTuner, on equal footing, in a space where choices matter.

Arms (each run a fresh process that pays its own start-up inside the budget):

* ``harness``: ``harness run`` with no ``[optuna]`` table: harness's default sampler,
  pruner and ``[study].stop_at_chance``.
* ``harness-random``: the same pipeline with ``[optuna] sampler = "random"``,
  ``pruner = "none"`` and ``stop_at_chance = false``: the control that separates the
  searcher from the pipeline.
* ``harness-median``: the defaults before this benchmark (TPE, the patient median
  pruner, no stop at chance), to measure what the new defaults changed;
  ``harness-median-chance``, ``harness-hyperband`` and ``harness-sha``: TPE with the
  patient median pruner, Optuna's Hyperband pruner or its (asynchronous) successive
  halving pruner, each stopping trials at chance after one epoch (the candidates the
  defaults were chosen from).
* ``kt-random``, ``kt-hyperband``, ``kt-bayesian``: KerasTuner's RandomSearch,
  Hyperband (``max_epochs`` = the study's epochs, ``factor = 3``, as its docs
  recommend) and BayesianOptimization, run by KerasTuner's own ``Tuner.search``.

No arm enqueues anything. The space, on both sides: 1-3 blocks of Conv2D(filters, 3,
valid, relu) + MaxPool(2), filters 8-128 (log), one Dense(units, relu) layer with
units 16-512 (log), Dropout(dropout) 0-0.6 after it, a 10-way softmax; optimizer
adam, sgd (momentum 0.9) or rmsprop; learning rate 1e-4..1e-1 (log); batch size
32-256 (log); ``--epochs`` epochs (9). Both compile with ``steps_per_execution = 32``.

Data: from ``../shared/data/mnist``, per seed, a stratified seeded sample of
``--train + --validation`` training images (the mnist plugin's ``limit``), split in
half by its stratified split with the seed; the KerasTuner child calls the same two
functions, so both sides see the same images. The 10,000 official test images score
each run's final incumbent once, after its budget, in the same way for every arm
(``keras`` ``evaluate`` on the incumbent's saved model: harness's kept model file,
KerasTuner's ``load_model`` of its trial). The test split chooses nothing.

Equal footing: each run is pinned to one core (``taskset``) and trains with one
TensorFlow thread; ``--parallel`` runs (2: one per core) go at once, arms interleaved
so that no arm always shares the machine with the same other arm. The budget counts
from the launch of the run's process. A trial that ends after it does not count: its
arm's incumbent is the best trial finished inside the budget (harness is killed at the
budget; KerasTuner's child stops its running trial at the first batch past it).
Validation figures are each tool's own objective: harness's is the trained model's
(last epoch), KerasTuner's is its trial's best epoch (which favours KerasTuner).

Printed: per arm, median and interquartile range of the final test error; mean rank
over seeds (1 best) with a bootstrap 95% interval; paired differences of harness's
test error against every other arm (mean, bootstrap 95% interval, Wilcoxon
signed-rank p); trials per run; the spread of random configurations' validation
accuracy; and when harness's median incumbent reaches KerasTuner RandomSearch's final
median validation error, as a share of the budget (goal: at most a third). The
anytime curve (median incumbent validation error against seconds) is drawn to
``--plot``. Runs are saved to ``--out``/runs.json; ``--summarize DIR`` reprints from
there. Not a test: figures depend on the machine.

    .venv/bin/python bench/search_quality.py --quick            # 2 seeds, 45 s, 3 epochs
    .venv/bin/python bench/search_quality.py                    # seeds 0-7, 150 s, 9 epochs
    .venv/bin/python bench/search_quality.py --seeds 8 9 10 11 12 13 14 15   # confirmation
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "mnist"
HARNESS_ARMS = (
    "harness", "harness-random", "harness-median", "harness-median-chance", "harness-hyperband",
    "harness-sha",
)
KERASTUNER_ARMS = ("kt-random", "kt-hyperband", "kt-bayesian")
ARMS = HARNESS_ARMS + KERASTUNER_ARMS
DEFAULT_ARMS = ("harness", "harness-random", "kt-random", "kt-hyperband", "kt-bayesian")
STUDY_NAME = "search_quality"
STEPS_PER_EXECUTION = 32
MOMENTUM = 0.9
SPACE = {
    "conv_layers": (1, 3),
    "filters": (8, 128),
    "units": (16, 512),
    "dropout": (0.0, 0.6),
    "batch_size": (32, 256),
    "learning_rate": (1e-4, 1e-1),
    "optimizer": ("adam", "sgd", "rmsprop"),
}

STUDY = """
[study]
name = "{name}"
trials = 10000
seed = {seed}
keep_models = 1000
{study_extra}
[dataset]
name = "mnist"
path = {data}
limit = {limit}
validation_split = 0.5

[model]
name = "cnn"
conv_layers = {{int = [{s[conv_layers][0]}, {s[conv_layers][1]}]}}
filters = {{int = [{s[filters][0]}, {s[filters][1]}], log = true}}
units = {{int = [{s[units][0]}, {s[units][1]}], log = true}}
dropout = {{float = [{s[dropout][0]}, {s[dropout][1]}]}}

[train]
epochs = {epochs}
batch_size = {{int = [{s[batch_size][0]}, {s[batch_size][1]}], log = true}}
optimizer = {{choice = {optimizers}}}
momentum = {{choice = [{momentum}], when = "optimizer == 'sgd'"}}
learning_rate = {{float = [{s[learning_rate][0]}, {s[learning_rate][1]}], log = true}}
steps_per_execution = {spe}
{optuna}"""

ARM_TABLES = {
    "harness": ("", ""),
    "harness-random": (
        "stop_at_chance = false\n",
        '\n[optuna]\nsampler = "random"\npruner = "none"\n',
    ),
    "harness-median": ("stop_at_chance = false\n", '\n[optuna]\npruner = "median"\n'),
    "harness-median-chance": ("stop_at_chance = true\n", '\n[optuna]\npruner = "median"\n'),
    "harness-hyperband": ("stop_at_chance = true\n", '\n[optuna]\npruner = "hyperband"\n'),
    "harness-sha": ("stop_at_chance = true\n", '\n[optuna]\npruner = "successive_halving"\n'),
}


def cnn_params(conv_layers: int, filters: int, units: int) -> int:
    """Parameters of the network both sides build (valid 3x3 convs, 2x2 pools, one hidden
    Dense layer, 10 outputs) on 28x28x1 images."""
    size, channels, total = 28, 1, 0
    for _ in range(conv_layers):
        total += (9 * channels + 1) * filters
        size, channels = (size - 2) // 2, filters
    return total + (size * size * channels + 1) * units + (units + 1) * 10


def cnn_flops(conv_layers: int, filters: int, units: int) -> int:
    """Multiply-adds of one image's forward pass through that network."""
    size, channels, total = 28, 1, 0
    for _ in range(conv_layers):
        out = size - 2
        total += out * out * filters * 9 * channels
        size, channels = out // 2, filters
    return total + size * size * channels * units + units * 10


def epoch_cost_ratio(runs: dict, seeds: list[int], budget: float) -> tuple[float, float, float]:
    """How much longer harness-random's epochs take than kt-random's for the same model and
    batch size: ``exp(d)`` of a least-squares fit of log(fit seconds per epoch) on
    log(multiply-adds), log(batch size) and d * [harness], over every complete trial of
    both random arms; with a bootstrap 95% interval over trials."""
    import numpy as np

    rows = []
    for arm in ("harness-random", "kt-random"):
        for seed in seeds:
            for t in inside(runs[arm, seed]["trials"], budget):
                c = t["config"]
                if t["state"] != "complete" or not t.get("fit_s") or not t["epochs"]:
                    continue
                flops = cnn_flops(int(c["conv_layers"]), int(c["filters"]), int(c["units"]))
                rows.append((
                    math.log(t["fit_s"] / t["epochs"]), math.log(flops),
                    math.log(int(c["batch_size"])), float(arm == "harness-random"),
                ))
    data = np.array(rows)

    def fit(sample):
        design = np.column_stack([np.ones(len(sample)), sample[:, 1:]])
        return float(np.linalg.lstsq(design, sample[:, 0], rcond=None)[0][-1])

    rng = np.random.default_rng(0)
    draws = [fit(data[rng.integers(0, len(data), len(data))]) for _ in range(2000)]
    low, high = np.percentile(draws, [2.5, 97.5])
    return math.exp(fit(data)), math.exp(low), math.exp(high)


def child_env() -> dict[str, str]:
    """The environment of every run: no GPU, TensorFlow's C++ logs quiet."""
    return {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""}


def pinned(command: list[str], core: int) -> list[str]:
    """``command`` on one core: harness and the KerasTuner child then use one thread."""
    return ["taskset", "-c", str(core), *command]


# --------------------------------------------------------------------------- harness side


def run_harness(arm: str, seed: int, core: int, args, folder: Path) -> dict:
    """One ``harness run`` for ``args.budget`` seconds (killed then); its trials and test."""
    study_extra, optuna_table = ARM_TABLES[arm]
    study = folder / f"{arm}-{seed}.toml"
    study.write_text(
        STUDY.format(
            name=STUDY_NAME, seed=seed, study_extra=study_extra, data=json.dumps(str(DATA)),
            limit=args.train + args.validation, s=SPACE, epochs=args.epochs,
            optimizers=json.dumps(list(SPACE["optimizer"])), momentum=MOMENTUM,
            spe=STEPS_PER_EXECUTION, optuna=optuna_table,
        )
    )
    runs = folder / f"runs-{arm}-{seed}"
    command = [
        sys.executable, "-m", "harness", "run", str(study), "--runs-dir", str(runs),
        "--no-progress", "--timeout", str(args.budget),
    ]
    launched = time.time()
    process = subprocess.Popen(
        pinned(command, core), cwd=REPO, env=child_env(), start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    try:
        _, stderr = process.communicate(timeout=args.budget)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        _, stderr = process.communicate()
    else:
        if process.returncode not in (0, 1):
            raise SystemExit(f"{arm} seed {seed} failed ({process.returncode}):\n{stderr[-3000:]}")
    trials = harness_trials(runs / STUDY_NAME / "optuna.journal", launched)
    best = incumbent(trials, args.budget)
    test = None
    if best is not None:
        model = runs / STUDY_NAME / "models" / f"trial-{best['number']:04d}.keras"
        test = score_in_child(model, seed, core, args)
    return {"trials": trials, "test_accuracy": test}


def harness_trials(journal: Path, launched: float) -> list[dict]:
    """Every finished trial of a run, from its Optuna journal: number, state, end time since
    launch, validation accuracy, epochs, parameters and parameter count."""
    import optuna
    from optuna.storages.journal import JournalFileBackend

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if not journal.is_file():
        return []
    storage = optuna.storages.JournalStorage(JournalFileBackend(str(journal)))
    study = optuna.load_study(study_name=STUDY_NAME, storage=storage)
    states = {
        optuna.trial.TrialState.COMPLETE: "complete",
        optuna.trial.TrialState.PRUNED: "pruned",
        optuna.trial.TrialState.FAIL: "failed",
    }
    trials = []
    for trial in study.get_trials(deepcopy=False):
        if trial.state not in states or trial.datetime_complete is None:
            continue
        history = json.loads(trial.user_attrs.get("history", "{}"))
        curve = [float(v) for v in history.get("val_accuracy", [])]
        complete = trial.state == optuna.trial.TrialState.COMPLETE
        trials.append({
            "number": trial.number,
            "state": states[trial.state],
            "start": trial.datetime_start.timestamp() - launched,
            "end": trial.datetime_complete.timestamp() - launched,
            "fit_s": trial.user_attrs.get("metric:train_seconds"),
            "val": trial.value if complete else None,
            "curve": curve,
            "epochs": len(curve),
            "params": trial.user_attrs.get("metric:params"),
            "config": {k.split(".", 1)[1]: v for k, v in trial.params.items()},
            "reason": trial.user_attrs.get("fail_reason"),
        })
    return sorted(trials, key=lambda t: t["end"])


def score_in_child(model: Path, seed: int, core: int, args) -> float:
    """The test accuracy of a saved harness model, measured in a fresh pinned process."""
    job = json.dumps({"model": str(model)})
    done = subprocess.run(
        pinned([sys.executable, str(Path(__file__).resolve()), "--score-child", job], core),
        cwd=REPO, env=child_env(), capture_output=True, text=True, check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"scoring {model} failed:\n{done.stderr[-3000:]}")
    return float(done.stdout.strip().splitlines()[-1])


def idx(name: str, offset: int):
    """The bytes of a gzipped MNIST IDX file of ``DATA`` after its ``offset``-byte header."""
    import gzip

    import numpy as np

    with gzip.open(DATA / name, "rb") as handle:
        return np.frombuffer(handle.read(), dtype=np.uint8, offset=offset)


def test_images():
    """The 10,000 official test images in [0, 1] and their labels."""
    import numpy as np

    x = idx("t10k-images-idx3-ubyte.gz", 16).reshape(-1, 28, 28, 1)
    y = idx("t10k-labels-idx1-ubyte.gz", 8).astype("int32")
    return x.astype("float32") / np.float32(255.0), y


def test_accuracy(model) -> float:
    """``model``'s accuracy on the official test images (predictions, not its metrics)."""
    x, y = test_images()
    predicted = model.predict(x, batch_size=500, verbose=0).argmax(axis=1)
    return float((predicted == y).mean())


def score_child(job: dict) -> None:
    """``--score-child``: print the test accuracy of a harness model file."""
    import harness.layers  # noqa: F401 - registers harness's layers for loading
    from harness.devices import configure_tensorflow

    os.environ["HARNESS_THREADS"] = "1"
    configure_tensorflow()
    import keras

    print(test_accuracy(keras.saving.load_model(job["model"])))


# ----------------------------------------------------------------------- KerasTuner side


def run_kerastuner(arm: str, seed: int, core: int, args, folder: Path) -> dict:
    """One KerasTuner search in a fresh pinned process; its trials and test figure."""
    out = folder / f"{arm}-{seed}.json"
    launched = time.time()
    job = {
        "arm": arm, "seed": seed, "budget": args.budget, "epochs": args.epochs,
        "train": args.train, "validation": args.validation, "launched": launched,
        "directory": str(folder / f"kt-{arm}-{seed}"), "out": str(out),
    }
    command = [sys.executable, str(Path(__file__).resolve()), "--kerastuner-child", json.dumps(job)]
    done = subprocess.run(
        pinned(command, core), cwd=REPO, capture_output=True, text=True, check=False,
        env=child_env(),
    )
    if done.returncode != 0 or not out.is_file():
        raise SystemExit(f"{arm} seed {seed} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(out.read_text())


def bench_split(seed: int, train: int, validation: int):
    """The images and labels a harness run with ``seed`` trains and validates on:
    ``(x_train, y_train, x_val, y_val)``, as the mnist plugin makes them."""
    import numpy as np
    from harness_plugins.datasets._arrays import carve_validation

    from harness.data import stratified_sample

    x = idx("train-images-idx3-ubyte.gz", 16).reshape(-1, 28, 28, 1)
    y = idx("train-labels-idx1-ubyte.gz", 8)
    kept = stratified_sample(y, train + validation, seed)
    x, y = x[kept].astype("float32") / np.float32(255.0), y[kept]
    return carve_validation(x, y, 0.5, seed, "mnist")


def kerastuner_child(job: dict) -> None:
    """``--kerastuner-child``: one KerasTuner search; writes its trials and test to ``out``."""
    launched, deadline = job["launched"], job["launched"] + job["budget"]
    x_train, y_train, x_val, y_val = bench_split(job["seed"], job["train"], job["validation"])
    y_train, y_val = y_train.astype("int32"), y_val.astype("int32")

    import tensorflow as tf

    threads = len(os.sched_getaffinity(0))  # as harness's worker on the same core
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
            current["fit_started"] = time.time()

        def on_train_end(self, logs=None):
            current["fit_s"] = time.time() - current["fit_started"]

        def on_train_batch_end(self, batch, logs=None):
            if time.time() > deadline:
                current["cut"] = True
                self.model.stop_training = True

        def on_epoch_end(self, epoch, logs=None):
            current["curve"].append(float((logs or {}).get("val_accuracy", math.nan)))

    class Model(keras_tuner.HyperModel):
        """The harness ``cnn`` builder's layers for the searched values, and the batch size
        searched in ``fit``, as KerasTuner's docs show."""

        def build(self, hp):
            conv_layers = hp.Int("conv_layers", *SPACE["conv_layers"])
            filters = hp.Int("filters", *SPACE["filters"], sampling="log")
            units = hp.Int("units", *SPACE["units"], sampling="log")
            dropout = hp.Float("dropout", *SPACE["dropout"])
            optimizer = hp.Choice("optimizer", list(SPACE["optimizer"]))
            rate = hp.Float("learning_rate", *SPACE["learning_rate"], sampling="log")
            inputs = keras.Input(shape=(28, 28, 1), name="input")
            h = inputs
            for index in range(1, conv_layers + 1):
                h = keras.layers.Conv2D(filters, 3, activation="relu", name=f"conv_{index}")(h)
                h = keras.layers.MaxPooling2D(2, name=f"pool_{index}")(h)
            h = keras.layers.Flatten(name="flatten")(h)
            h = keras.layers.Dense(units, activation="relu", name="dense_1")(h)
            if dropout:
                h = keras.layers.Dropout(dropout, name="dense_dropout_1")(h)
            outputs = keras.layers.Dense(10, activation="softmax", name="output")(h)
            model = keras.Model(inputs, outputs, name="cnn")
            make = {
                "adam": lambda: keras.optimizers.Adam(learning_rate=rate),
                "sgd": lambda: keras.optimizers.SGD(learning_rate=rate, momentum=MOMENTUM),
                "rmsprop": lambda: keras.optimizers.RMSprop(learning_rate=rate),
            }
            model.compile(
                optimizer=make[optimizer](),
                loss="sparse_categorical_crossentropy",
                metrics=["accuracy"],
                steps_per_execution=STEPS_PER_EXECUTION,
            )
            return model

        def fit(self, hp, model, *args, **kwargs):
            size = hp.Int("batch_size", *SPACE["batch_size"], sampling="log")
            return model.fit(*args, batch_size=size, **kwargs)

    class Timed:
        """Mixed into a KerasTuner tuner: no trial after the budget; each trial recorded."""

        def pre_create_trial(self):
            if time.time() >= deadline:
                raise BudgetSpent
            super().pre_create_trial()

        def on_trial_begin(self, trial):
            current.clear()
            current.update(curve=[], cut=False, params=None, start=time.time() - launched)
            super().on_trial_begin(trial)

        def on_trial_end(self, trial):
            super().on_trial_end(trial)
            curve = current["curve"]
            completed = str(trial.status).upper().endswith("COMPLETED") and bool(curve)
            values = trial.hyperparameters.values
            trials.append({
                "number": len(trials),
                "trial_id": trial.trial_id,
                "state": "complete" if completed else "failed",
                "start": current["start"],
                "end": time.time() - launched,
                "fit_s": current.get("fit_s"),
                "cut": current["cut"],
                "val": trial.score if completed else None,
                "curve": curve,
                "epochs": len(curve),
                "params": current["params"],
                "config": {k: v for k, v in values.items() if not k.startswith("tuner/")},
                "reason": None if completed else (trial.message or "")[-300:],
            })

    common = {
        "objective": "val_accuracy",
        "seed": job["seed"],
        "directory": job["directory"],
        "project_name": STUDY_NAME,
        "overwrite": True,
    }
    kinds = {
        "kt-random": (keras_tuner.RandomSearch, {"max_trials": 10_000}),
        "kt-hyperband": (
            keras_tuner.Hyperband,
            {"max_epochs": job["epochs"], "factor": 3, "hyperband_iterations": 10_000},
        ),
        "kt-bayesian": (keras_tuner.BayesianOptimization, {"max_trials": 10_000}),
    }
    base, options = kinds[job["arm"]]
    tuner = type("Timed" + base.__name__, (Timed, base), {})(Model(), **options, **common)
    try:
        tuner.search(
            x_train, y_train, epochs=job["epochs"], validation_data=(x_val, y_val),
            callbacks=[Budget()], verbose=0,
        )
    except BudgetSpent:
        pass
    best = incumbent(trials, job["budget"])
    test = None
    if best is not None:
        model = tuner.load_model(tuner.oracle.get_trial(best["trial_id"]))
        test = test_accuracy(model)
    Path(job["out"]).write_text(json.dumps({"trials": trials, "test_accuracy": test}))


# ------------------------------------------------------------------------------ figures


def inside(trials: list[dict], budget: float) -> list[dict]:
    """The trials that finished inside the budget (not cut by it)."""
    return [t for t in trials if t["end"] <= budget and not t.get("cut")]


def incumbent(trials: list[dict], budget: float) -> dict | None:
    """The best complete trial finished inside the budget (the earlier on a tie)."""
    complete = [t for t in inside(trials, budget) if t["state"] == "complete" and t["val"]]
    return max(complete, key=lambda t: (t["val"], -t["end"]), default=None)


def incumbent_curve(trials: list[dict], budget: float, grid: list[float]) -> list[float]:
    """Incumbent validation error at each time of ``grid`` (1.0 before any trial)."""
    done = sorted(
        (t for t in inside(trials, budget) if t["state"] == "complete" and t["val"]),
        key=lambda t: t["end"],
    )
    curve, best, index = [], 1.0, 0
    for moment in grid:
        while index < len(done) and done[index]["end"] <= moment:
            best = min(best, 1.0 - done[index]["val"])
            index += 1
        curve.append(best)
    return curve


def ranks(errors: dict[str, float]) -> dict[str, float]:
    """Rank of each arm's test error (1 = lowest; ties share the mean rank)."""
    ordered = sorted(errors.values())
    return {
        arm: sum(i + 1 for i, e in enumerate(ordered) if e == error) / ordered.count(error)
        for arm, error in errors.items()
    }


def bootstrap_interval(values, statistic, draws: int = 10_000, seed: int = 0):
    """A percentile bootstrap 95% interval of ``statistic`` over resampled ``values``."""
    import numpy as np

    rng = np.random.default_rng(seed)
    values = np.asarray(values)
    picks = rng.integers(0, len(values), size=(draws, len(values)))
    stats = np.array([statistic(values[p]) for p in picks])
    return float(np.percentile(stats, 2.5)), float(np.percentile(stats, 97.5))


def summarize(runs: dict, args) -> None:
    """Print every figure the module docstring names, and draw the anytime curve."""
    import numpy as np
    from scipy.stats import wilcoxon

    arms = [a for a in args.arms if any(k[0] == a for k in runs)]
    seeds = sorted({k[1] for k in runs if all((a, k[1]) in runs for a in arms)})
    budget = args.budget
    print(f"\n{len(seeds)} seeds with every arm: {seeds}; budget {budget:g} s per run\n")
    print("| arm | median test error | IQR | mean rank (95% CI) | trials per run "
          "(complete / pruned / failed) | epochs per run |")
    print("|---|---:|---:|---:|---:|---:|")
    errors = {a: np.array([1 - runs[a, s]["test_accuracy"] for s in seeds]) for a in arms}
    rank_rows = np.array([[ranks({a: errors[a][i] for a in arms})[a] for a in arms]
                          for i in range(len(seeds))])
    for j, arm in enumerate(arms):
        e = errors[arm]
        low, high = bootstrap_interval(rank_rows[:, j], np.mean)
        counts = [
            [sum(t["state"] == state for t in inside(runs[arm, s]["trials"], budget))
             for s in seeds]
            for state in ("complete", "pruned", "failed")
        ]
        epochs = [sum(t["epochs"] for t in inside(runs[arm, s]["trials"], budget)) for s in seeds]
        print(
            f"| {arm} | {np.median(e):.4f} | {np.percentile(e, 25):.4f}-{np.percentile(e, 75):.4f}"
            f" | {rank_rows[:, j].mean():.2f} ({low:.2f}-{high:.2f}) | "
            + " / ".join(f"{np.median(c):g}" for c in counts)
            + f" | {np.median(epochs):g} |"
        )
    print("\nseconds per trial outside the fit (model, data, evaluation, saving) and between "
          "trials (the searcher, the storage), medians over every trial of every run:")
    for arm in arms:
        trials = [t for s in seeds for t in runs[arm, s]["trials"] if t.get("fit_s") is not None]
        outside = [t["end"] - t["start"] - t["fit_s"] for t in trials if "start" in t]
        gaps = [
            b["start"] - a["end"]
            for s in seeds
            for a, b in zip(runs[arm, s]["trials"], runs[arm, s]["trials"][1:], strict=False)
            if "start" in b
        ]
        if outside:
            print(f"  {arm}: outside the fit {np.median(outside):.2f} s, between trials "
                  f"{np.median(gaps) if gaps else float('nan'):.2f} s, start to first trial "
                  f"{np.median([runs[arm, s]['trials'][0]['start'] for s in seeds]):.1f} s")
    if "harness-random" in arms and "kt-random" in arms:
        ratio, low, high = epoch_cost_ratio(runs, seeds, budget)
        print(f"  an epoch of the same model and batch size, harness-random / kt-random: "
              f"{ratio:.2f}x (95% CI {low:.2f}x-{high:.2f}x; fit on every complete trial)")
        for arm in ("harness-random", "kt-random"):
            flops = [
                cnn_flops(int(t["config"]["conv_layers"]), int(t["config"]["filters"]),
                          int(t["config"]["units"])) / int(t["config"]["batch_size"])
                for s in seeds for t in runs[arm, s]["trials"]
            ]
            print(f"  {arm}: median multiply-adds per image / batch size of the trials drawn "
                  f"{np.median(flops) / 1e3:.1f}k, mean {np.mean(flops) / 1e3:.1f}k")
    print("\nper seed, test error:")
    for i, seed in enumerate(seeds):
        print(f"  seed {seed}: " + ", ".join(f"{a} {errors[a][i]:.4f}" for a in arms))
    reference = args.reference
    if reference in arms:
        print(f"\npaired differences, {reference} test error minus the other arm's "
              f"(negative: {reference} better):")
        for arm in arms:
            if arm == reference:
                continue
            diff = errors[reference] - errors[arm]
            low, high = bootstrap_interval(diff, np.mean)
            p = wilcoxon(diff).pvalue if np.any(diff != 0) else 1.0
            wins = int((diff < 0).sum())
            print(
                f"  vs {arm}: mean {diff.mean():+.4f}, 95% CI [{low:+.4f}, {high:+.4f}], "
                f"Wilcoxon p = {p:.3f}; {reference} lower on {wins} of {len(seeds)} seeds"
            )
    spread = [
        t["val"] for a in ("harness-random", "kt-random") if a in arms for s in seeds
        for t in inside(runs[a, s]["trials"], budget) if t["val"] is not None
    ]
    if spread:
        print(
            f"\nrandom configurations (harness-random and kt-random, {len(spread)} complete "
            f"trials): validation accuracy {min(spread):.4f} to {max(spread):.4f}, median "
            f"{np.median(spread):.4f}; below 0.2: {sum(v < 0.2 for v in spread)}"
        )
    grid = [budget * i / 300 for i in range(301)]
    medians = {
        a: np.median([incumbent_curve(runs[a, s]["trials"], budget, grid) for s in seeds], axis=0)
        for a in arms
    }
    print("\nmedian incumbent validation error at a third, two thirds and all of the budget:")
    for arm in arms:
        print(f"  {arm}: " + ", ".join(f"{medians[arm][i]:.4f}" for i in (100, 200, 300)))
    if reference in arms and "kt-random" in arms:
        target = medians["kt-random"][-1]
        reached = next((grid[i] for i, v in enumerate(medians[reference]) if v <= target), None)
        verdict = (
            "never" if reached is None
            else f"at {reached:.0f} s, {reached / budget:.2f} of the budget "
            f"({'met' if reached <= budget / 3 else 'not met'}: goal <= 1/3)"
        )
        print(f"{reference} reaches kt-random's final median validation error ({target:.4f}) "
              f"{verdict}")
    if args.plot:
        draw(grid, medians, args.plot, budget, len(seeds))


def draw(grid, medians, path: Path, budget: float, seeds: int) -> None:
    """The anytime curve: median incumbent validation error against seconds, per arm."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 4.2))
    for arm, curve in medians.items():
        style = "-" if arm.startswith("harness") else "--"
        axes.step(grid, curve, where="post", linestyle=style, label=arm)
    axes.set_yscale("log")
    axes.set_ylim(0.8 * min(min(curve) for curve in medians.values()), 1.0)
    axes.set_xlim(0, budget)
    axes.set_xlabel("seconds since the run's launch (one core each)")
    axes.set_ylabel("incumbent validation error (median)")
    axes.set_title(f"MNIST 5k/5k, 9 epochs, {budget:g} s per run: median of {seeds} seeds")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend()
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    print(f"anytime curve: {path}")


# ------------------------------------------------------------------------------ driver


def run_one(arm: str, seed: int, core: int, args, folder: Path) -> dict:
    """One run of ``arm`` with ``seed`` on ``core``."""
    if arm in HARNESS_ARMS:
        return run_harness(arm, seed, core, args, folder)
    return run_kerastuner(arm, seed, core, args, folder)


def main() -> None:
    """Run every arm for every seed, ``--parallel`` at a time, and print the figures."""
    if len(sys.argv) == 3 and sys.argv[1] in ("--kerastuner-child", "--score-child"):
        child = kerastuner_child if sys.argv[1] == "--kerastuner-child" else score_child
        child(json.loads(sys.argv[2]))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=list(range(8)))
    parser.add_argument("--budget", type=float, default=150.0, help="seconds per run")
    parser.add_argument("--epochs", type=int, default=9, help="epochs per trial")
    parser.add_argument("--arms", nargs="+", choices=ARMS, default=list(DEFAULT_ARMS))
    parser.add_argument("--train", type=int, default=5_000, help="training images")
    parser.add_argument("--validation", type=int, default=5_000, help="validation images")
    parser.add_argument("--parallel", type=int, default=2, help="runs at once, one core each")
    parser.add_argument("--quick", action="store_true", help="2 seeds, 45 s, 3 epochs")
    parser.add_argument("--out", type=Path, default=Path("/tmp/search_quality"))
    parser.add_argument("--plot", type=Path, default=None, help="PNG of the anytime curve")
    parser.add_argument(
        "--reference", choices=ARMS, default="harness", help="the arm the others are paired with"
    )
    parser.add_argument("--summarize", type=Path, default=None, help="reprint a saved --out")
    args = parser.parse_args()
    if args.quick:
        args.seeds, args.budget, args.epochs = args.seeds[:2], 45.0, 3
    if args.summarize is not None:
        saved = json.loads((args.summarize / "runs.json").read_text())
        args.budget = saved["budget"]
        runs = {(r["arm"], r["seed"]): r for r in saved["runs"]}
        summarize(runs, args)
        return
    if not DATA.is_dir():
        raise SystemExit(f"{DATA} is missing: the benchmark needs the MNIST IDX files there")
    cores = sorted(os.sched_getaffinity(0))[: args.parallel]
    args.out.mkdir(parents=True, exist_ok=True)
    print(
        f"budget {args.budget:g} s per run, {args.epochs} epochs per trial, {args.train} "
        f"training + {args.validation} validation images, seeds {args.seeds}, arms "
        f"{', '.join(args.arms)}; {len(cores)} runs at once on cores {cores}, one thread each",
        flush=True,
    )
    jobs = []
    for position, seed in enumerate(args.seeds):
        shift = position % len(args.arms)  # no arm always runs first or beside the same arm
        jobs += [(arm, seed) for arm in args.arms[shift:] + args.arms[:shift]]
    free = list(cores)
    lock = threading.Lock()
    runs: dict = {}

    def work(arm: str, seed: int) -> None:
        with lock:
            core = free.pop()
        try:
            run = run_one(arm, seed, core, args, args.out)
        finally:
            with lock:
                free.append(core)
        best = incumbent(run["trials"], args.budget)
        states = [t["state"] for t in inside(run["trials"], args.budget)]
        with lock:
            runs[arm, seed] = {"arm": arm, "seed": seed, **run}
            (args.out / "runs.json").write_text(
                json.dumps({"budget": args.budget, "runs": list(runs.values())})
            )
        test = run["test_accuracy"]
        print(
            f"seed {seed} {arm:14s}: {states.count('complete')} complete, "
            f"{states.count('pruned')} pruned, {states.count('failed')} failed; incumbent "
            f"val {best['val'] if best else float('nan'):.4f}, test "
            f"{test if test is not None else float('nan'):.4f}",
            flush=True,
        )

    with ThreadPoolExecutor(max_workers=len(cores)) as pool:
        for future in [pool.submit(work, arm, seed) for arm, seed in jobs]:
            future.result()
    summarize(runs, args)


if __name__ == "__main__":
    main()
