"""LayerwisePretrainer: a base network trained without labels, one layer at a time.

For when no pretrained network fits and unlabelled images are plenty: each layer is
trained as a (denoising) autoencoder on the frozen, cached outputs of the layers below
it. The output is a standard `Model` artifact holding `model.keras`, the same form as
BaseModelGen's, so the bottleneck cache and the Trainer take it as their base.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from tfx import types
from tfx.dsl.components.base import base_component, executor_spec
from tfx.types import standard_artifacts

from components.layerwise_pretrainer import executor, spec, stack


class LayerwisePretrainer(base_component.BaseComponent):
    """Greedy layer-wise autoencoder pretraining of an encoder stack."""

    SPEC_CLASS = spec.LayerwisePretrainerSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)

    def __init__(
        self,
        examples: types.BaseChannel,
        transform_graph: types.BaseChannel,
        conv_blocks: Sequence[Mapping[str, Any]] = (),
        dense_units: Sequence[int] = (),
        epochs_per_layer: int = 10,
        batch_size: int = 32,
        learning_rate: float = 1e-3,
        noise: str = "gaussian",
        noise_level: float = 0.1,
        seed: int = 0,
    ):
        """Constructs a LayerwisePretrainer.

        Args:
          examples: Examples (train split trained on, eval split held out); labels, if
            any, are ignored.
          transform_graph: Transform's graph: the images' preprocessing.
          conv_blocks: conv blocks lowest first: {filters, kernel=3, pool=2}.
          dense_units: dense layers after the conv blocks.
          epochs_per_layer: epochs of each layer's autoencoder.
          batch_size: images per training batch.
          learning_rate: Adam's learning rate.
          noise: "none", "gaussian" (additive) or "masking" (zeroed inputs): the
            denoising corruption of each autoencoder's input.
          noise_level: the Gaussian stddev, or the masking probability.
          seed: seeds initialization, shuffling and noise.

        Raises:
          stack.LayerSpecError: a bad layer spec or training setting, named.
        """
        layers = stack.parse_layers(conv_blocks, dense_units)
        stack.PretrainConfig(
            epochs_per_layer=epochs_per_layer,
            batch_size=batch_size,
            learning_rate=learning_rate,
            noise=noise,
            noise_level=noise_level,
            seed=seed,
        )
        super().__init__(
            spec=spec.LayerwisePretrainerSpec(
                **{
                    spec.EXAMPLES_KEY: examples,
                    spec.TRANSFORM_GRAPH_KEY: transform_graph,
                    spec.LAYERS_KEY: stack.layers_to_json(layers),
                    spec.EPOCHS_KEY: epochs_per_layer,
                    spec.BATCH_SIZE_KEY: batch_size,
                    spec.LEARNING_RATE_KEY: learning_rate,
                    spec.NOISE_KEY: noise,
                    spec.NOISE_LEVEL_KEY: noise_level,
                    spec.SEED_KEY: seed,
                    spec.MODEL_KEY: types.Channel(type=standard_artifacts.Model),
                }
            )
        )
