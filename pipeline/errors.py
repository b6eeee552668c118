"""The failures the command line maps to its exit statuses (see pipeline/cli.py).

A light module (no TensorFlow, no TFX), so the CLI can name them before anything heavy
is imported. ConfigError (pipeline/config.py) is a ValueError: exit status 2.
"""


class RunInProgressError(RuntimeError):
    """Another run holds the pipeline root or metadata file (exit status 3)."""


class StepFailedError(RuntimeError):
    """A pipeline step stopped the run (exit status 4)."""


class ServerError(RuntimeError):
    """TF Serving could not be reached, or answered with an error (exit status 5)."""
