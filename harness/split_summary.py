"""What ``harness validate`` prints about the data: the examples per class (and the groups)
of each split, from the dataset plugin's optional ``splits`` function, without TensorFlow."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from harness.errors import HarnessError, StudyFileError


def dataset_values(spec) -> dict[str, Any]:
    """The study's ``[dataset]`` values, each searched one at its first representative (the
    values ``check`` sees, see :func:`harness.study.check_data`)."""
    prefix = spec.dataset.prefix + "."
    values = {
        k.removeprefix(prefix): v for k, v in spec.space.literals.items() if k.startswith(prefix)
    }
    for param in spec.space.params:
        if param.name.startswith(prefix):
            values[param.name.removeprefix(prefix)] = param.distribution.representatives()[0]
    return values


def split_lines(spec) -> list[str]:
    """One line per split (``train: 2,268 examples (paper 756, ...), 18 groups``), as a
    trial with the study's seed loads them; empty when the dataset plugin cannot say
    without loading. A data problem it finds is a one-line StudyFileError."""
    splits = spec.dataset.component.splits
    if splits is None:
        return []
    where = f"{spec.path}: [dataset]"
    try:
        params = spec.dataset.component.params.model_validate(dataset_values(spec))
        summary = splits(params, spec.study.seed or 0)
    except HarnessError as exc:
        raise StudyFileError(f"{where}: {exc}") from None
    except ValidationError as exc:
        raise StudyFileError(f"{where}: {exc.errors()[0]['msg']}") from None
    except Exception as exc:  # noqa: BLE001 - a plugin bug is one line too
        raise StudyFileError(
            f"{where}: the {spec.dataset.name!r} plugin's splits function failed: "
            f"{type(exc).__name__}: {exc}"
        ) from None
    if summary is None:
        return []
    return summary.lines()
