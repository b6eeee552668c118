"""cut_layer auto: default candidates of real architectures and the k-fold selection."""

import keras
import numpy as np
import pytest

from components.base_model_gen import bases
from components.common import model_surgery
from components.common.examples import candidate_key
from components.trainer import cut_selection

HEAD = model_surgery.HeadSpec(3, (), 0.0)


def _task(seed: int = 0, per_class: int = 8):
    """Three classes; 'signal' separates them, 'noise' cannot (independent of labels)."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(3), per_class)
    signal = rng.normal(size=(len(labels), 6)).astype(np.float32)
    signal[np.arange(len(labels)), labels] += 4.0
    noise = rng.normal(size=(len(labels), 6)).astype(np.float32)
    return labels, {"noise": noise, "signal": signal}


def _select(vectors, labels, seed=0):
    return cut_selection.select_cut(
        vectors, labels, HEAD, learning_rate=0.05, batch_size=8, seed=seed, folds=4, epochs=15
    )


def test_picks_the_layer_whose_features_separate_the_classes():
    labels, vectors = _task()
    selection = _select(vectors, labels)
    assert selection.chosen == "signal"
    scores = {s.layer: s for s in selection.scores}
    assert scores["signal"].mean > 0.9 > 0.6 > scores["noise"].mean
    assert len(scores["signal"].fold_accuracies) == 4
    assert "signal" in selection.reason and "train split" in selection.reason
    assert "| signal (chosen) | 6 |" in selection.table()


def test_same_data_and_seed_same_choice_and_scores():
    labels, vectors = _task(seed=3)
    first, second = _select(vectors, labels, seed=7), _select(vectors, labels, seed=7)
    assert first.chosen == second.chosen
    assert first.to_dict()["candidates"] == second.to_dict()["candidates"]


def test_ties_go_to_the_lower_layer():
    labels, vectors = _task()
    tied = {"lower": vectors["signal"], "upper": vectors["signal"].copy()}
    selection = _select(tied, labels)
    assert selection.chosen == "lower"
    assert "tie, the lower layer kept" in selection.reason


def test_stratified_folds_hold_every_class_evenly():
    labels = np.repeat(np.arange(4), 5)
    folds = cut_selection.stratified_folds(labels, 5, seed=0)
    for fold in range(5):
        assert sorted(labels[folds == fold]) == [0, 1, 2, 3]
    with pytest.raises(ValueError, match="at least 5 labelled"):
        cut_selection.stratified_folds(labels[:3], 5, seed=0)


def test_folds_shrink_to_the_smallest_class():
    labels, vectors = _task(per_class=3)
    selection = cut_selection.select_cut(
        vectors, labels, HEAD, learning_rate=0.05, batch_size=8, seed=0, folds=5, epochs=5
    )
    assert selection.folds == 3


def test_default_candidates_are_block_boundaries():
    vgg = keras.applications.VGG16(include_top=False, weights=None, input_shape=(32, 32, 3))
    assert model_surgery.default_cut_candidates(vgg) == [f"block{i}_pool" for i in range(1, 6)]
    small = bases.small_cnn(32, 32)
    assert model_surgery.default_cut_candidates(small) == [
        "block1_pool",
        "block2_pool",
        "block3_pool",
        "gap",
    ]
    # no pooling layers: the last layer at each resolution (Keras' own MobileNetV2
    # feature-extraction examples use these)
    mobile = keras.applications.MobileNetV2(
        include_top=False, weights=None, input_shape=(96, 96, 3)
    )
    assert model_surgery.default_cut_candidates(mobile) == [
        "block_1_expand_relu",
        "block_3_expand_relu",
        "block_6_expand_relu",
        "block_13_expand_relu",
        "out_relu",
    ]


def test_resolve_cut_candidates_orders_and_checks_names():
    small = bases.small_cnn(32, 32)
    assert model_surgery.resolve_cut_candidates(small, ["gap", "block2_pool"]) == [
        "block2_pool",
        "gap",
    ]
    with pytest.raises(ValueError, match="not layers of base model.*valid names"):
        model_surgery.resolve_cut_candidates(small, ["block9_pool", "gap"])
    with pytest.raises(ValueError, match="at least 2 cut_candidates"):
        model_surgery.resolve_cut_candidates(small, ["gap"])
    with pytest.raises(ValueError, match="twice"):
        model_surgery.resolve_cut_candidates(small, ["gap", "gap"])


def test_candidate_feature_names():
    assert candidate_key("block4_pool") == "bottleneck@block4_pool"


def test_default_candidates_skip_a_nested_head():
    """A source-trained classifier ends in a nested head model: not a cut point."""
    inputs = keras.Input((32, 32, 3))
    x = inputs
    for i in (1, 2, 3):
        x = keras.layers.Conv2D(4, 3, padding="same", name=f"conv{i}")(x)
        x = keras.layers.MaxPooling2D(name=f"pool{i}")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    head = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)], name="head")
    classifier = keras.Model(inputs, head(x))
    candidates = model_surgery.default_cut_candidates(classifier)
    assert candidates == ["pool1", "pool2", "pool3", "gap"]
    extractor = model_surgery.multi_extractor(classifier, candidates, "flatten")
    assert extractor(np.zeros((2, 32, 32, 3), np.float32)).shape == (
        2,
        16 * 16 * 4 + 8 * 8 * 4 + 4 * 4 * 4 + 4,
    )
