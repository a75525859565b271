"""What ``harness validate`` prints about the data: the examples per class (and the groups)
of each split, from the dataset plugin's optional ``splits`` function, without TensorFlow."""

from __future__ import annotations

from harness.study import call_dataset_plugin


def split_lines(spec) -> list[str]:
    """One line per split (``train: 2,268 examples (paper 756, ...), 18 groups``), as a
    trial with the study's seed loads them; empty when the dataset plugin cannot say
    without loading. A data problem it finds is a one-line StudyFileError."""
    splits = spec.dataset.component.splits
    if splits is None:
        return []
    seed = spec.study.seed or 0
    summary = call_dataset_plugin(
        spec, f"{spec.path}: [dataset]", "splits function", lambda params: splits(params, seed)
    )
    if summary is None:
        return []
    return summary.lines()
