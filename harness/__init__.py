"""harness: a plugin-based AutoML experiment harness for TensorFlow/Keras.

Plugin authors need only ``hookimpl`` (and the types in ``harness.data`` and
``harness.models``)::

    import harness

    @harness.hookimpl
    def harness_register_datasets(register):
        register("my_data", load_my_data, params=MyParams)

Notebooks and scripts run and read studies with the Python API (:mod:`harness.api`,
loaded on first use so that ``import harness`` stays light)::

    result = harness.run("studies/quickstart.toml", trials=3, set={"train.epochs": 2})
    result.trials                      # the trial table, best first
    harness.load("quickstart").best    # a finished run, read again
"""

from harness.hookspecs import hookimpl

__all__ = [
    "hookimpl",
    "__version__",
    "run",
    "load",
    "evaluate_best",
    "export_table",
    "export_best_model",
    "StudyResult",
    "BestTrial",
]
__version__ = "0.1.0"

#: The names :mod:`harness.api` provides here. Not ``evaluate``, ``export`` or ``predict``:
#: those are modules of this package, and importing one would replace the function.
_API = frozenset(
    {"run", "load", "evaluate_best", "export_table", "export_best_model", "StudyResult",
     "BestTrial"}
)


def __getattr__(name: str):
    if name in _API:
        from harness import api  # lazy: pandas and TensorFlow only when a study is run or read

        return getattr(api, name)
    raise AttributeError(f"module 'harness' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_API})
