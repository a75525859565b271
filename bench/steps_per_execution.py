"""Fit time with ``train.steps_per_execution`` at harness's default against one batch per call
(Keras's own default, what a bare script or KerasTuner runs with).

Three of the course's MNIST models, each trained the way a harness trial trains it
(``harness.fit_inputs.training_pipelines``: shuffled, batch 32, prefetched; compiled by
``harness.pipeline.build_model`` with the study's ``[train]`` table), on the first
``--limit`` images of ``../shared/data/mnist`` with 2,000 more for validation:

* ``dense``: Flatten -> Dense(128, relu) -> Dense(10) (the course's first MNIST model);
* ``cnn1``: one Conv2D(32) block -> Dense(128) (the quickstart's model);
* ``cnn2``: two Conv2D(64) blocks -> Dense(128) (the course's MNIST convnet).

Each model trains ``--epochs`` epochs with 1 step per execution and with the default,
``--repeat`` times, interleaved, in one process (after one untimed warm-up fit). Printed
per model: the median fit seconds of each, their ratio, and whether both trained
to the same validation accuracy (they must: the updates are the same). Not a test:
figures depend on the machine.

    .venv/bin/python bench/steps_per_execution.py   # --limit 12000 --epochs 2 --repeat 3
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "mnist"
VALIDATION = 2_000
MODELS = {
    "dense": {"name": "dense", "units": 128, "dropout": 0.0},
    "cnn1": {"name": "cnn", "conv_layers": 1, "filters": 32, "units": 128},
    "cnn2": {"name": "cnn", "conv_layers": 2, "filters": 64, "units": 128},
}


@functools.cache
def plugins():
    """The installed plugins, loaded once for every study of the run."""
    from harness.plugins import load_plugins

    return load_plugins()


def study(model: dict, limit: int, epochs: int, steps: int):
    """The one-trial study both ways train: harness's mnist plugin on the shared IDX files."""
    from harness.study import parse_study

    raw = {
        "study": {"name": "spe", "objective": "val_accuracy", "seed": 0},
        "dataset": {
            "name": "mnist", "path": str(DATA), "limit": limit + VALIDATION,
            "validation_split": VALIDATION / (limit + VALIDATION),
        },
        "model": dict(model),
        "train": {"epochs": epochs, "batch_size": 32, "steps_per_execution": steps},
    }
    return parse_study(raw, plugins(), REPO / "spe.toml")


def load_dataset(limit: int, cache: Path):
    """The images as a trial holds them (uint8, scaled inside the pipeline)."""
    from harness.data import LoadContext
    from harness.fit_inputs import component_params

    spec = study(MODELS["dense"], limit, 1, 1)
    params = component_params(spec.dataset, dict(spec.space.literals))
    return spec.dataset.component.function(params, LoadContext(cache_dir=cache, seed=0))


def fit_once(dataset, model: dict, limit: int, steps: int, epochs: int) -> tuple[float, float]:
    """One fit as a trial runs it; its seconds and last validation accuracy."""
    import keras

    from harness.fit_inputs import train_params, training_pipelines
    from harness.pipeline import build_model

    spec = study(model, limit, epochs, steps)
    params = dict(spec.space.literals)
    train = train_params(params)
    keras.utils.set_random_seed(0)
    built = build_model(spec, params, dataset.info, train)
    train_ds, val_ds = training_pipelines(dataset, train, None, seed=0)
    started = time.perf_counter()
    history = built.model.fit(train_ds, validation_data=val_ds, epochs=epochs, verbose=0)
    seconds = time.perf_counter() - started
    keras.backend.clear_session()
    return seconds, float(history.history["val_accuracy"][-1])


def main() -> None:
    """Fit each model both ways, interleaved, and print the medians and ratios."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--limit", type=int, default=12_000, help="training images")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    if not DATA.is_dir():
        raise SystemExit(f"{DATA} is missing: the benchmark needs the MNIST IDX files there")
    from harness.study import TrainParams

    default = TrainParams().steps_per_execution
    with tempfile.TemporaryDirectory() as cache:
        dataset = load_dataset(args.limit, Path(cache))
        print(
            f"{args.limit} training + {VALIDATION} validation images, {args.epochs} epochs, batch "
            f"32; steps per execution 1 against {default} (the default); median of {args.repeat}",
            flush=True,
        )
        fit_once(dataset, MODELS["dense"], args.limit, 1, 1)  # warm-up: TensorFlow's first graphs
        for label, model in MODELS.items():
            times: dict[int, list[float]] = {1: [], default: []}
            accuracy: dict[int, set[float]] = {1: set(), default: set()}
            for _ in range(args.repeat):
                for steps in times:
                    seconds, val = fit_once(dataset, model, args.limit, steps, args.epochs)
                    times[steps].append(seconds)
                    accuracy[steps].add(round(val, 4))
            one, many = statistics.median(times[1]), statistics.median(times[default])
            same = "same" if accuracy[1] == accuracy[default] else "DIFFERENT"
            print(
                f"{label:6s}: 1 step {one:5.2f} s, {default} steps {many:5.2f} s: "
                f"{one / many:.2f}x faster; val_accuracy {sorted(accuracy[1])} / "
                f"{sorted(accuracy[default])} ({same})",
                flush=True,
            )


if __name__ == "__main__":
    main()
