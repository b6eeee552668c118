"""BaseModelGen: Keras Applications by name with local weights, user model files."""

import os

import keras
import numpy as np
import pytest
from tfx.types import standard_artifacts

from components.base_model_gen import bases, component, executor, spec
from components.common import model_io


def _weights_equal(a: keras.Model, b: keras.Model) -> bool:
    wa, wb = a.get_weights(), b.get_weights()
    return len(wa) == len(wb) and all(np.array_equal(x, y) for x, y in zip(wa, wb, strict=True))


def test_application_is_headless_at_the_pipeline_size_and_seeded():
    a = bases.build_application("MobileNetV2", 32, 32, seed=3)
    b = bases.build_application("MobileNetV2", 32, 32, seed=3)
    c = bases.build_application("MobileNetV2", 32, 32, seed=4)
    assert tuple(a.input.shape) == (None, 32, 32, 3)
    assert not any(isinstance(layer, keras.layers.Dense) for layer in a.layers)  # no top
    assert _weights_equal(a, b) and not _weights_equal(a, c)


def test_application_loads_a_local_weights_file_and_rejects_a_wrong_one(tmp_path):
    source = bases.build_application("MobileNetV2", 32, 32, seed=7)
    weights = str(tmp_path / "mobilenet_v2_notop.weights.h5")
    source.save_weights(weights)
    loaded = bases.build_application("MobileNetV2", 32, 32, weights=weights, seed=0)
    assert _weights_equal(source, loaded)

    other = str(tmp_path / "resnet.weights.h5")
    keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)]).save_weights(other)
    with pytest.raises(ValueError, match="does not fit MobileNetV2"):
        bases.build_application("MobileNetV2", 32, 32, weights=other)
    with pytest.raises(FileNotFoundError, match="base_model.weights"):
        bases.build_application("MobileNetV2", 32, 32, weights=str(tmp_path / "none.h5"))
    with pytest.raises(ValueError, match="choose one of: MobileNetV2"):
        bases.build_application("MobileNet9", 32, 32)


def _small_model(size=16):
    inputs = keras.Input((size, size, 3))
    x = keras.layers.Conv2D(4, 3, name="conv")(inputs)
    return keras.Model(inputs, keras.layers.GlobalAveragePooling2D(name="gap")(x))


def test_file_kind_loads_keras_files_and_checks_the_input_size(tmp_path):
    path = str(tmp_path / "base.keras")
    _small_model(16).save(path)
    model = bases.make_base(spec.KIND_FILE, 16, 16, path=path)
    assert [layer.name for layer in model.layers][-1] == "gap"
    with pytest.raises(ValueError, match="takes 16x16 images but image.height/width is 32x32"):
        bases.make_base(spec.KIND_FILE, 32, 32, path=path)
    (tmp_path / "model.pb").write_bytes(b"x")
    with pytest.raises(ValueError, match=r"must be a Keras model file ending in \.keras or \.h5"):
        bases.load_file(str(tmp_path / "model.pb"))


def test_executor_writes_model_keras_and_driver_tracks_the_file(tmp_path):
    path = str(tmp_path / "base.keras")
    _small_model(16).save(path)
    artifact = standard_artifacts.Model()
    artifact.uri = str(tmp_path / "out")
    props = {
        spec.KIND_KEY: spec.KIND_FILE,
        spec.PATH_KEY: path,
        spec.HEIGHT_KEY: 16,
        spec.WIDTH_KEY: 16,
    }
    executor.Executor().Do({}, {spec.MODEL_KEY: [artifact]}, props)
    assert os.path.exists(os.path.join(artifact.uri, model_io.KERAS_MODEL_FILE))
    reloaded = model_io.load_keras(artifact.uri)
    assert _weights_equal(reloaded, keras.models.load_model(path))
    assert artifact.get_int_custom_property(spec.PROP_LAYERS) == len(reloaded.layers)

    first = component.Driver.fingerprint(props)
    assert component.Driver.fingerprint(props) == first
    _small_model(16).save(path)  # new weights, same path
    os.utime(path, ns=(1, 1))
    assert component.Driver.fingerprint(props) != first


def test_component_rejects_bad_arguments():
    with pytest.raises(ValueError, match="kind must be one of keras_application, builtin, file"):
        component.BaseModelGen(kind="hub", height=8, width=8)
    with pytest.raises(ValueError, match="name must be one of MobileNetV2"):
        component.BaseModelGen(kind="keras_application", height=8, width=8, name="x")
    with pytest.raises(ValueError, match="path is required"):
        component.BaseModelGen(kind="file", height=8, width=8)
