"""ImageExampleGen: image folders (one sub-folder per class) -> tf.Examples.

Outputs: `examples` (Examples, splits train and eval), `vocabulary` (ClassVocabulary:
labels.txt and class_counts.json) and `report` (IngestReport: quarantined files,
duplicates and the reconciled counts). See ingest.py for the validation rules.
"""

from typing import Any

from tfx import types
from tfx.dsl.components.base import base_beam_component, executor_spec
from tfx.types import standard_artifacts

from components.common import artifacts
from components.image_example_gen import driver, executor, spec


def _check_arguments(
    input_base: Any, train_ratio: Any, max_pixels: Any, max_side: Any, labelled: Any
) -> None:
    """Raises ValueError naming the argument and the allowed values."""

    if isinstance(input_base, str) and not input_base.strip():
        raise ValueError("input_base must be a folder path or URI, got an empty string")
    for name, value in (
        (spec.TRAIN_RATIO_KEY, train_ratio),
        (spec.MAX_PIXELS_KEY, max_pixels),
        (spec.MAX_SIDE_KEY, max_side),
    ):
        spec.BOUNDS[name].check(name, value)
    if not isinstance(labelled, bool):
        raise ValueError(f"labelled must be True or False, got {labelled!r}")


class ImageExampleGen(base_beam_component.BaseBeamComponent):
    """Ingests a folder of images into tf.Examples; bad files are quarantined and counted."""

    SPEC_CLASS = spec.ImageExampleGenSpec
    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(executor.Executor)
    DRIVER_CLASS = driver.Driver

    def __init__(
        self,
        input_base: str,
        train_ratio: float = 0.8,
        max_pixels: int = 50_000_000,
        max_side: int = 0,
        labelled: bool = True,
    ):
        """Constructs an ImageExampleGen.

        Args:
          input_base: folder (or gs:// URI) with one sub-folder per class, or any folder
            of images when labelled is False.
          train_ratio: share of images in the train split (by content hash), 0 < r < 1.
          max_pixels: images with more pixels are quarantined before decoding.
          max_side: when > 0, images with a longer side are downscaled to it.
          labelled: False for unlabelled images (label -1), e.g. for pretraining.

        Raises:
          ValueError: if an argument is outside its allowed values.
        """
        _check_arguments(input_base, train_ratio, max_pixels, max_side, labelled)
        super().__init__(
            spec=spec.ImageExampleGenSpec(
                **{
                    spec.INPUT_BASE_KEY: input_base,
                    spec.TRAIN_RATIO_KEY: float(train_ratio),
                    spec.MAX_PIXELS_KEY: max_pixels,
                    spec.MAX_SIDE_KEY: max_side,
                    spec.LABELLED_KEY: int(labelled),
                    spec.EXAMPLES_KEY: types.Channel(type=standard_artifacts.Examples),
                    spec.VOCABULARY_KEY: types.Channel(type=artifacts.ClassVocabulary),
                    spec.REPORT_KEY: types.Channel(type=artifacts.IngestReport),
                }
            )
        )
