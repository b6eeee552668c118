"""BottleneckCache's executor under DirectRunner's multi_processing mode.

Everything the job ships to workers must pickle, and the model must load inside each
worker (ModelHandler.load_model), not on the driver. The worker processes import
TensorFlow on start, which takes about a minute on two cores: one run only.
"""

import numpy as np
from tfx.types import artifact_utils, standard_artifacts

from components.bottleneck_cache import spec
from components.common import artifact_io
from components.common.examples import SPLITS
from components.common.testing import (
    artifact,
    direct_vectors,
    make_image,
    save_base,
    tiny_cnn,
    vectors_by_id,
    write_examples,
)

BEAM_ARGS = ["--direct_running_mode=multi_processing", "--direct_num_workers=2"]


def test_multi_processing_direct_runner_computes_what_in_memory_reuses(
    tmp_path, make_record, write_transform, run_cache, assert_close
):
    images = [make_image(i, seed=11) for i in range(8)]
    bad = make_record(b"not an image")
    records = [make_record(image) for image in images]
    splits = {SPLITS[0]: records[:5] + [bad], SPLITS[1]: records[5:]}
    examples = artifact(standard_artifacts.Examples, write_examples(tmp_path / "in", splits))
    examples.split_names = artifact_utils.encode_split_names(list(SPLITS))
    transform = artifact(standard_artifacts.TransformGraph, write_transform(tmp_path / "tf"))
    base = artifact(standard_artifacts.Model, save_base(tiny_cnn(), tmp_path / "base"))
    inputs = (examples, transform, base, len(images))

    output = run_cache(tmp_path, inputs, "multi", beam_args=BEAM_ARGS)
    assert output.get_int_custom_property(spec.PROP_COMPUTED) == len(images)
    assert output.get_int_custom_property(spec.PROP_FAILED) == 1
    assert output.get_int_custom_property("train_examples") == 5
    vectors = vectors_by_id(output)
    expected = direct_vectors(tiny_cnn(), "relu1", "avg", images)
    for i, image in enumerate(images):
        assert_close(vectors[artifact_io.content_id(image)], expected[i])

    # The shard the worker processes wrote serves an in-memory run completely.
    again = run_cache(tmp_path, inputs, "in_memory")
    assert again.get_int_custom_property(spec.PROP_COMPUTED) == 0
    assert again.get_int_custom_property(spec.PROP_REUSED) == len(images)
    for image_id, vector in vectors_by_id(again).items():
        np.testing.assert_array_equal(vector, vectors[image_id])
