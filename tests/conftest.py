"""Fixtures shared by the test modules (no test module imports another)."""

import numpy as np
import pytest

from components.serving_check.tf_serving_probe import SessionModel


@pytest.fixture
def tf_serving():
    """Calls a SavedModel's signature the way TF Serving does: TF1 session, saver restore,
    signature_def tensor names (never tf.saved_model.load). Returns
    ``answer(model_dir, signature_name, {input: values}) -> {output: ndarray}``."""
    models: dict[str, SessionModel] = {}

    def answer(model_dir, signature_name, inputs):
        model_dir = str(model_dir)
        if model_dir not in models:
            models[model_dir] = SessionModel(model_dir)
        arrays = {
            key: np.array(list(value), dtype=object) if not isinstance(value, np.ndarray) else value
            for key, value in inputs.items()
        }
        return models[model_dir].run(signature_name, arrays)

    yield answer
    for model in models.values():
        model.close()
