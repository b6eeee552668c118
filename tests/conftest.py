"""Fixtures shared by the test modules (no test module imports another).

Plain builders that need no component (images, Examples files, tiny bases, readers of
outputs) are in components.common.testing, which bench/ uses too. The helpers here run
a component's own code, or are fixtures proper: a factory fixture returns the helper
itself, under the name the tests call it by. Components are imported when a fixture is
first used, so test modules that need none do not pay for them.
"""

import numpy as np
import pytest

from components.common import artifact_io, testing
from components.common import preprocessing as pp
from components.common.examples import SPLITS
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


# --- records, transform graphs and the cache job --------------------------------------------
def _make_record(image: bytes, label: int = 0) -> bytes:
    from components.image_example_gen import ingest

    image_id = artifact_io.content_id(image)
    return ingest.make_example(
        image, label, f"class{label}", image_id, f"c/{image_id}", 1, 1, "png"
    )


@pytest.fixture(scope="session")
def make_record():
    """make_record(image, label=0): a serialized tf.Example exactly as ImageExampleGen
    writes it."""
    return _make_record


@pytest.fixture(scope="session")
def split_images():
    """split_images(images): {train: records, eval: records}; every third image goes to
    eval."""

    def split(images: list) -> dict:
        records = [_make_record(image, i % 2) for i, image in enumerate(images)]
        return {SPLITS[0]: records[0::3] + records[2::3], SPLITS[1]: records[1::3]}

    return split


@pytest.fixture(scope="session")
def write_transform():
    """write_transform(directory, image_spec=TINY_SPEC, scalar=False): exports a transform
    graph of preprocessing_fn as TFX Transform does (testing.write_transform, analysing
    the record of testing.make_image(0)); returns its dir."""

    def write(directory, image_spec: pp.ImageSpec = testing.TINY_SPEC, scalar: bool = False):
        record = _make_record(testing.make_image(0))
        return testing.write_transform(directory, record, image_spec, scalar)

    return write


@pytest.fixture(scope="session")
def run_job():
    """run_job(examples_root, base_dir, transform_dir, cache_dir, out_dir, **options):
    make_plan + cache.run_bottlenecks; returns (plan, counts).

    Options: cut_layer, drop_top_layers, pooling, cut_candidates, batch_size, beam_args,
    run_id.
    """
    import apache_beam as beam

    from components.bottleneck_cache import cache
    from components.bottleneck_cache import plan as plan_lib

    def run(examples_root, base_dir, transform_dir, cache_dir, out_dir, **options):
        plan = plan_lib.make_plan(
            str(base_dir),
            str(transform_dir),
            options.get("cut_layer", ""),
            options.get("drop_top_layers", 0),
            options.get("pooling", "avg"),
            tuple(options.get("cut_candidates", ())),
        )
        counts = cache.run_bottlenecks(
            lambda: beam.Pipeline(argv=options.get("beam_args", [])),
            testing.split_patterns(examples_root),
            plan,
            str(cache_dir),
            str(out_dir),
            options.get("batch_size", 4),
            run_id=options.get("run_id", ""),
        )
        return plan, counts

    return run


@pytest.fixture(scope="session")
def assert_close():
    """assert_close(got, expected, tolerance=1e-5): max |got - expected| < tolerance,
    relative to the values' scale when above 1."""

    def check(got: np.ndarray, expected: np.ndarray, tolerance: float = 1e-5) -> None:
        scale = max(1.0, float(np.abs(expected).max()))
        assert got.shape == expected.shape
        assert np.abs(got - expected).max() < tolerance * scale, np.abs(got - expected).max()

    return check


@pytest.fixture(scope="module")
def transform_dir(tmp_path_factory, write_transform):
    """A transform graph of preprocessing_fn for TINY_SPEC, exported once per module."""
    return write_transform(tmp_path_factory.mktemp("transform"))


@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory):
    """testing.tiny_cnn() saved as a base model directory, once per module."""
    return testing.save_base(testing.tiny_cnn(), tmp_path_factory.mktemp("tiny_base"))


# --- component executors on artifacts -------------------------------------------------------
@pytest.fixture(scope="session")
def run_image_example_gen():
    """run_image_example_gen(tmp_path, input_base, **overrides): ImageExampleGen's
    Executor.Do on fresh artifacts under <tmp_path>/out; returns (examples, vocabulary,
    report)."""

    from components.image_example_gen.testing import run_executor

    def run(tmp_path, input_base, **overrides):
        overrides = {"max_pixels": testing.HOSTILE_MAX_PIXELS, **overrides}
        return run_executor(str(input_base), str(tmp_path / "out"), **overrides)

    return run


@pytest.fixture(scope="session")
def run_cache():
    """run_cache(tmp_path, inputs, name, beam_args=None, **overrides): BottleneckCache's
    Executor.Do into a new output artifact <tmp_path>/<name>; returns it.

    inputs: (examples, transform_graph, base_model) artifacts and the image count; the
    cache dir is <tmp_path>/cache, the cut relu1 with avg pooling unless overridden.
    """
    from components.bottleneck_cache.testing import run_executor

    def run(tmp_path, inputs, name, beam_args=None, **overrides):
        examples, transform, base, _ = inputs
        overrides = {"cut_layer": "relu1", "batch_size": 4, **overrides}
        return run_executor(
            examples,
            transform,
            base,
            str(tmp_path / name),
            cache_dir=str(tmp_path / "cache"),
            tmp_dir=str(tmp_path / "tmp"),
            unique_id=name,
            beam_args=beam_args,
            **overrides,
        )

    return run


def write_demo_with_schema(root, target_per_class: int = 10):
    """The bundled demo folders under ``root/demo`` and the target's schema at
    ``root/schema.pbtxt`` (what `make demo` writes, smaller): e2e tests start here."""
    from pipeline import schema as schema_lib
    from pipeline.demo_data import write_demo_data

    write_demo_data(str(root / "demo"), target_per_class=target_per_class)
    classes = schema_lib.class_names_in(str(root / "demo" / "target"))
    schema_lib.write_schema(schema_lib.build_schema(classes), str(root / "schema.pbtxt"))
    return root


@pytest.fixture(scope="session")
def demo_with_schema():
    """``write_demo_with_schema(root, target_per_class)``, for module-scoped fixtures."""
    return write_demo_with_schema
