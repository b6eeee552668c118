"""Model surgery on tiny Keras 3 models: cut, freeze, head, unfreeze, auto policy."""

import keras
import numpy as np
import pytest

from components.common import model_surgery as surgery


def _base():
    inputs = keras.Input((8, 8, 3), name="image")
    x = keras.layers.Conv2D(4, 3, padding="same", name="conv1")(inputs)
    x = keras.layers.BatchNormalization(name="bn1")(x)
    x = keras.layers.ReLU(name="relu1")(x)
    x = keras.layers.Conv2D(6, 3, padding="same", name="conv2")(x)
    x = keras.layers.BatchNormalization(name="bn2")(x)
    x = keras.layers.ReLU(name="relu2")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    return keras.Model(inputs, keras.layers.Dense(3, name="old_top")(x), name="tiny")


def test_cut_by_name_or_by_dropping_top_layers():
    base = _base()
    assert surgery.resolve_cut_layer(base, cut_layer="relu1") == "relu1"
    assert surgery.resolve_cut_layer(base) == "old_top"
    assert surgery.resolve_cut_layer(base, drop_top_layers=2) == "relu2"
    cut = surgery.cut_base(base, drop_top_layers=2)
    assert cut.output.shape[1:] == (8, 8, 6)
    x = np.random.default_rng(0).random((2, 8, 8, 3), dtype=np.float32)
    inner = keras.Model(base.input, base.get_layer("relu2").output)
    np.testing.assert_allclose(cut(x), inner(x), atol=1e-6)


def test_bad_cuts_are_clear_errors():
    base = _base()
    with pytest.raises(ValueError, match="valid names: image, conv1, bn1"):
        surgery.resolve_cut_layer(base, cut_layer="conv9")
    with pytest.raises(ValueError, match=r"drop_top_layers=8 is out of range .* <= 7"):
        surgery.resolve_cut_layer(base, drop_top_layers=8)
    with pytest.raises(ValueError, match="not both"):
        surgery.resolve_cut_layer(base, cut_layer="conv1", drop_top_layers=1)


@pytest.mark.parametrize(
    ("pooling", "shape"), [("avg", (6,)), ("max", (6,)), ("flatten", (384,)), ("none", (8, 8, 6))]
)
def test_feature_extractor_is_frozen_and_pooled(pooling, shape):
    extractor = surgery.feature_extractor(_base(), cut_layer="relu2", pooling=pooling)
    assert extractor.output.shape[1:] == shape
    assert not extractor.trainable and not extractor.trainable_weights
    # Vectors are not pooled again: a cut below any spatial map keeps its shape.
    assert surgery.feature_extractor(_base(), cut_layer="gap").output.shape[1:] == (6,)


def test_head_shapes_and_validation():
    head = surgery.build_head((6,), surgery.HeadSpec(num_classes=4, hidden_units=(5,), dropout=0.2))
    assert head.output.shape[1:] == (4,)
    assert [layer.name for layer in head.layers if isinstance(layer, keras.layers.Dense)] == [
        "head_dense_0",
        "head_softmax",
    ]
    probabilities = head(np.ones((2, 6), np.float32))
    np.testing.assert_allclose(np.sum(probabilities, axis=1), 1.0, atol=1e-6)
    assert surgery.build_head((2, 2, 3), surgery.HeadSpec(num_classes=2)).output.shape[1:] == (2,)
    with pytest.raises(ValueError, match="num_classes must be >= 2"):
        surgery.HeadSpec(num_classes=1)
    with pytest.raises(ValueError, match="dropout"):
        surgery.HeadSpec(num_classes=2, dropout=1.0)


def test_unfreeze_top_keeps_batchnorm_in_inference_mode():
    extractor = surgery.feature_extractor(_base(), cut_layer="relu2")
    names = surgery.unfreeze_top(extractor, 1)
    assert names == ["conv2"]
    trainable = {layer.name for layer in extractor.layers if layer.trainable}
    assert trainable == {"conv2"}
    bn = extractor.get_layer("bn2")
    before = [w.numpy().copy() for w in bn.weights]
    model = keras.Sequential([extractor, keras.layers.Dense(2, activation="softmax")])
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="sparse_categorical_crossentropy")
    conv_before = extractor.get_layer("conv2").kernel.numpy().copy()
    x = np.random.default_rng(1).random((8, 8, 8, 3), dtype=np.float32) * 5
    model.fit(x, np.arange(8) % 2, epochs=2, verbose=0)
    for b, a in zip(before, bn.weights, strict=True):  # moving stats and gamma/beta fixed
        np.testing.assert_array_equal(b, a.numpy())
    assert not np.array_equal(conv_before, extractor.get_layer("conv2").kernel.numpy())
    assert not extractor.get_layer("conv1").trainable
    assert surgery.unfreeze_top(extractor, 0) == []
    with pytest.raises(ValueError, match="between 0 and 2"):
        surgery.unfreeze_top(extractor, 3)
