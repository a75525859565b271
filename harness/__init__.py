"""harness: a plugin-based AutoML experiment harness for TensorFlow/Keras.

Plugin authors need only ``hookimpl`` (and the types in ``harness.data`` and
``harness.models``)::

    import harness

    @harness.hookimpl
    def harness_register_datasets(register):
        register("my_data", load_my_data, params=MyParams)
"""

from harness.hookspecs import hookimpl

__all__ = ["hookimpl", "__version__"]
__version__ = "0.1.0"
