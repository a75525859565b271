"""Train a frozen base's head on features computed once, not on images every epoch.

When a builder returns a :class:`~harness.models.BuiltModel` with
``frozen_base`` and ``head`` set, no augmentation is active and there is no
fine-tuning phase, every epoch would run the same frozen base over the same
images. :class:`FrozenBaseFeatures`, a strategy the trial pipeline consults, runs it
once instead (batched), and the
trial trains ``head`` on the features. Because ``head`` shares its layers with
the full model, the full base + head model is trained too, and it is what the
runner evaluates, saves and predicts with. (Not used by ``--smoke``, nor when
``steps_per_epoch`` lets training see fewer images than the dataset holds.)

Features are kept per process (the most recent few) and, when the base's
weights are the same in every trial (``extra["feature_key"]``: pretrained or
from a file), on disk as ``.npy`` under ``<runs-dir>/.cache/features-<key>/``
(``HARNESS_FEATURE_CACHE_DIR`` to put them elsewhere), keyed by (base, weights,
image size, dataset, its parameters and a digest of its first examples): every
worker, every trial and every later study on the same data under the same runs
directory reads them instead of running the base again. A base with random
weights differs per trial: its features are computed once per trial and not
stored. Set ``HARNESS_FEATURE_CACHE=0`` to train on images every epoch.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np

from harness.context import TrialContext
from harness.data import Dataset, cache_key
from harness.files import replacing, write_text_atomic
from harness.fit_inputs import FitInputs, component_params, training_pipelines
from harness.models import BuiltModel
from harness.study import TrainParams

log = logging.getLogger(__name__)

#: Feature sets kept in memory per process (the most recently used).
MEMORY_ENTRIES = 2
#: Larger feature sets than this (MiB, train + validation) are not cached: train on images.
DEFAULT_MAX_MIB = 4096.0
SPLITS = ("train", "validation")

_MEMORY: OrderedDict[str, dict[str, np.ndarray]] = OrderedDict()


def enabled() -> bool:
    """False when ``HARNESS_FEATURE_CACHE`` is 0/false/no."""
    return os.environ.get("HARNESS_FEATURE_CACHE", "1").lower() not in ("0", "false", "no")


def applies(built: BuiltModel, trial: TrialContext) -> bool:
    """Whether the head can train on precomputed features: a frozen base and a head are
    declared, no augmentation (it would change the base's input every epoch) and no
    fine-tuning phase (it trains the base)."""
    return (
        enabled()
        and built.frozen_base is not None
        and built.head is not None
        and built.fine_tune is None
        and not trial.study.spec.augmentations
        and not built.frozen_base.trainable_weights
    )


#: Examples of each split whose bytes go into the feature key (changed data, new key).
DIGEST_EXAMPLES = 64


def feature_cache_key(built: BuiltModel, dataset: Dataset, trial: TrialContext) -> str | None:
    """A short stable key for (base and weights, dataset, its parameters and first
    examples), or None when the base's weights are not shared between trials."""
    base_key = built.extra.get("feature_key")
    if not base_key:
        return None
    spec = trial.study.spec
    dataset_params = component_params(spec.dataset, trial.params).model_dump(mode="json")
    blob = json.dumps(
        {
            "base": base_key,
            "dataset": cache_key(spec.dataset.name, dataset_params),
            "seed": spec.study.seed or 0,  # loaders split with it
            "data": _data_digest(dataset),
        },
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _data_digest(dataset: Dataset) -> str:
    """A digest of the split sizes and the first examples of each split, so that a study
    on other data (the same dataset name and parameters, new files) gets a new key."""
    digest = hashlib.sha256(f"{dataset.train_size}".encode())
    for name in SPLITS:
        split = getattr(dataset, name)
        if split is None:
            continue
        digest.update(name.encode())
        for x, y in split.take(DIGEST_EXAMPLES).as_numpy_iterator():
            digest.update(np.ascontiguousarray(x).tobytes())
            digest.update(np.ascontiguousarray(y).tobytes())
    return digest.hexdigest()[:16]


def features_folder(trial: TrialContext, key: str) -> Path:
    """Where features of ``key`` are stored: ``<runs-dir>/.cache/features-<key>/`` (shared
    by every study under that runs directory), or under ``HARNESS_FEATURE_CACHE_DIR``."""
    root = os.environ.get("HARNESS_FEATURE_CACHE_DIR") or trial.study.run_dir.parent / ".cache"
    return Path(root) / f"features-{key}"


def compute_features(
    extractor: Any, dataset: Dataset, name: str, batch_size: int
) -> tuple[np.ndarray, np.ndarray]:
    """Run ``extractor`` once over the split ``name`` of ``dataset``, in order (one compiled
    graph, not layer-by-layer eager calls)."""
    import tensorflow as tf  # lazy: imports TensorFlow

    run = tf.function(lambda x: extractor(x, training=False), reduce_retracing=True)
    features, labels = [], []
    batches = dataset.model_batches(getattr(dataset, name).batch(batch_size))
    for x, y in batches.prefetch(tf.data.AUTOTUNE):
        features.append(run(x).numpy())
        labels.append(y.numpy())
    if not features:
        raise ValueError("the split is empty")
    return np.concatenate(features), np.concatenate(labels)


def _estimate_mib(built: BuiltModel, dataset: Dataset) -> float | None:
    if dataset.train_size is None:
        return None
    per_item = int(np.prod(built.frozen_base.output_shape[1:])) * 4
    return dataset.train_size * per_item * 1.25 / 2**20  # + a validation split's worth


def _load(folder: Path) -> dict[str, np.ndarray] | None:
    if not (folder / "meta.json").is_file():
        return None
    try:
        meta = json.loads((folder / "meta.json").read_text())
        return {name: np.load(folder / f"{name}.npy") for name in meta["arrays"]}
    except (OSError, ValueError, KeyError) as exc:
        log.warning("ignoring unreadable feature cache %s: %s", folder, exc)
        return None


def _save(folder: Path, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
    """Write each array, then meta.json last (a reader only trusts a folder with meta.json)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, array in arrays.items():
        with replacing(folder / f"{name}.npy") as tmp:
            np.save(tmp, array)
    manifest = json.dumps({**meta, "arrays": sorted(arrays)}, indent=2) + "\n"
    write_text_atomic(folder / "meta.json", manifest)


def _features(built, dataset: Dataset, trial: TrialContext, batch_size: int):
    key = feature_cache_key(built, dataset, trial)
    folder = features_folder(trial, key) if key else None
    if key in _MEMORY:
        _MEMORY.move_to_end(key)
        log.info("trial %s: head trains on features from memory (%s)", trial.number, key)
        return _MEMORY[key]
    arrays = _load(folder) if folder is not None else None
    if arrays is None:
        arrays = {}
        for name in SPLITS:
            if getattr(dataset, name) is not None:
                arrays[f"{name}_x"], arrays[f"{name}_y"] = compute_features(
                    built.frozen_base, dataset, name, batch_size
                )
        if folder is not None:
            _save(folder, arrays, {"feature_key": built.extra["feature_key"],
                                   "dataset": trial.study.spec.dataset.name})
        log.info("trial %s: computed the frozen base's features once", trial.number)
    if key is not None:
        _MEMORY[key] = arrays
        while len(_MEMORY) > MEMORY_ENTRIES:
            _MEMORY.popitem(last=False)
    return arrays


class FrozenBaseFeatures:
    """The fit strategy that trains a frozen base's head on features computed once."""

    def inputs(
        self, built: BuiltModel, dataset: Dataset, trial: TrialContext, train: TrainParams
    ) -> FitInputs | None:
        """The head and feature pipelines to fit instead of the full model, or None to
        train as usual (see the module docstring for when it applies).

        ``head`` is compiled like the full model (its loss, metrics and optimizer);
        the datasets are batched, shuffled and prefetched as the runner does for images.
        """
        import tensorflow as tf  # lazy: imports TensorFlow

        if not applies(built, trial) or trial.study.spec.smoke:
            return None  # --smoke: two batches cost less than a pass over every split
        if train.steps_per_epoch and dataset.train_size:
            seen = train.steps_per_epoch * train.batch_size * train.epochs
            if seen < dataset.train_size:  # e.g. --smoke: a few batches cost less than all
                return None
        size = _estimate_mib(built, dataset)
        limit = float(os.environ.get("HARNESS_FEATURE_CACHE_MAX_MIB", DEFAULT_MAX_MIB))
        if size is not None and size > limit:
            log.info("features would take ~%.0f MiB (> %.0f): training on images", size, limit)
            return None
        arrays = _features(built, dataset, trial, max(train.batch_size, 32))

        def split(name: str):
            if f"{name}_x" not in arrays:
                return None
            return tf.data.Dataset.from_tensor_slices((arrays[f"{name}_x"], arrays[f"{name}_y"]))

        features = Dataset(
            dataset.info, split("train"), split("validation"), train_size=dataset.train_size
        )
        seed = trial.study.spec.study.seed or 0
        train_ds, val_ds = training_pipelines(features, train, None, seed)
        model = built.model
        metrics = (
            built.metrics if built.metrics is not None else model.get_compile_config()["metrics"]
        )
        # The full model's own optimizer: the head's variables are the full model's trainable
        # ones, so the saved full model carries the optimizer state of this training.
        built.head.compile(
            optimizer=model.optimizer, loss=model.loss, metrics=metrics,
            steps_per_execution=train.execution_steps(),
        )
        return FitInputs(built.head, train_ds, val_ds)
