"""Pure core of LayerwisePretrainer: greedy layer-wise autoencoder pretraining.

The encoder is a stack of layers (convolutional blocks, then optional dense layers),
trained one at a time from the lowest: layer k is the encoder half of an autoencoder
whose input is the *cached* output of the frozen layers 1..k-1. Those outputs are
computed once per level, from the previous level's cache with one layer's forward
pass, and stored as a float32 ``.npy`` memory map on disk: no epoch ever runs the lower
layers again (the same reasoning as the bottleneck cache), and memory stays flat as the
dataset grows because training batches are read from the map.

Layer names make cut points readable and match the builtin ``small_cnn``:
``block{i}_conv`` and ``block{i}_pool`` for conv blocks, ``flatten`` and ``dense{i}``
for dense layers, i being the position in the whole stack (two conv blocks then one
dense layer: ``dense3``). The assembled encoder takes ``[batch, height, width, 3]`` images and
is an ordinary Keras functional model: the bottleneck cache and the Trainer cut,
freeze and cache it like any other base.

Denoising: with ``noise`` "gaussian" (additive, stddev ``noise_level``) or "masking"
(each input value zeroed with probability ``noise_level``), the autoencoder sees a
corrupted input and is trained to reconstruct the clean one; the saved encoder has no
noise layer.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import keras
import numpy as np

from components.layerwise_pretrainer.spec import BOUNDS, NOISES


class LayerSpecError(ValueError):
    """A layer stack description is invalid; the message names the entry and the fix."""


@dataclasses.dataclass(frozen=True)
class ConvBlock:
    """Conv2D(filters, kernel, ReLU, same padding) then MaxPooling2D(pool) if pool > 1."""

    filters: int
    kernel: int = 3
    pool: int = 2

    kind = "conv"


@dataclasses.dataclass(frozen=True)
class DenseLayer:
    """Dense(units, ReLU), after flattening the spatial map once."""

    units: int

    kind = "dense"


LayerSpec = ConvBlock | DenseLayer


@dataclasses.dataclass(frozen=True)
class PretrainConfig:
    """How each layer is trained."""

    epochs_per_layer: int = 10
    batch_size: int = 32
    learning_rate: float = 1e-3
    noise: str = "gaussian"
    noise_level: float = 0.1
    seed: int = 0

    def __post_init__(self):
        if self.noise not in NOISES:
            raise LayerSpecError(
                f"noise: {self.noise!r} is not allowed; choose one of: {', '.join(NOISES)}"
            )
        for name in ("noise_level", "epochs_per_layer", "batch_size", "learning_rate"):
            bounds, value = BOUNDS[name], getattr(self, name)
            if not bounds.contains(value):
                raise LayerSpecError(f"{name}: must be {bounds.describe()}, got {value}")


def parse_layers(
    conv_blocks: Iterable[Mapping[str, Any]] = (), dense_units: Iterable[Any] = ()
) -> list[LayerSpec]:
    """Validates a layer stack: conv blocks (lowest first), then dense layers.

    Args:
        conv_blocks: mappings with ``filters`` (required), ``kernel`` (default 3) and
            ``pool`` (default 2; 1 means no pooling).
        dense_units: units of each dense layer, after the conv blocks.

    Returns:
        The layer specs, lowest first.

    Raises:
        LayerSpecError: naming the entry (``conv_blocks[1].kernel``) and what is allowed.
    """
    layers: list[LayerSpec] = []
    for i, block in enumerate(conv_blocks):
        where = f"conv_blocks[{i}]"
        if not isinstance(block, Mapping):
            raise LayerSpecError(
                f"{where}: expected a mapping like {{filters: 32, kernel: 3, pool: 2}}, got "
                f"{block!r}"
            )
        unknown = sorted(set(block) - {"filters", "kernel", "pool"})
        if unknown:
            raise LayerSpecError(
                f"{where}: unknown key(s) {', '.join(map(str, unknown))}; allowed keys: "
                "filters, kernel, pool"
            )
        if "filters" not in block:
            raise LayerSpecError(f"{where}.filters: required (the number of feature maps)")
        filters = _int(f"{where}.filters", block["filters"], BOUNDS["filters"])
        kernel = _int(f"{where}.kernel", block.get("kernel", 3), BOUNDS["kernel"])
        pool = _int(f"{where}.pool", block.get("pool", 2), BOUNDS["pool"])
        layers.append(ConvBlock(filters, kernel, pool))
    for j, units in enumerate(dense_units):
        layers.append(DenseLayer(_int(f"dense_units[{j}]", units, BOUNDS["units"])))
    if not layers:
        raise LayerSpecError(
            "the layer stack is empty: give at least one of conv_blocks (e.g. "
            "[{filters: 32}, {filters: 64}]) or dense_units (e.g. [256])"
        )
    return layers


def _int(name: str, value: Any, bounds) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise LayerSpecError(f"{name}: expected an integer, got {value!r}")
    if not bounds.contains(value):
        raise LayerSpecError(
            f"{name}: {value} is out of range; it must be >= {bounds.low:g} and <= {bounds.high:g}"
        )
    return value


def layers_to_json(layers: Sequence[LayerSpec]) -> str:
    """The stack as JSON (the component's execution property)."""
    return json.dumps(
        {
            "conv_blocks": [dataclasses.asdict(x) for x in layers if isinstance(x, ConvBlock)],
            "dense_units": [x.units for x in layers if isinstance(x, DenseLayer)],
        },
        sort_keys=True,
    )


def layers_from_json(text: str) -> list[LayerSpec]:
    """Inverse of layers_to_json (validated)."""
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as e:
        raise LayerSpecError(f"layers: not valid JSON: {e}") from e
    if not isinstance(raw, Mapping):
        raise LayerSpecError(f"layers: expected a JSON object, got {text!r}")
    return parse_layers(raw.get("conv_blocks", ()), raw.get("dense_units", ()))


def block_name(index: int, layer: LayerSpec) -> str:
    """Readable name of the index-th (0-based) layer of the stack."""
    if isinstance(layer, ConvBlock):
        return f"block{index + 1}"
    return f"dense{index + 1}"


# --- building blocks ---------------------------------------------------------------------
def encoder_layers(
    index: int, layer: LayerSpec, input_shape: Sequence[int], first_dense: bool
) -> list[keras.layers.Layer]:
    """The encoder layers of one stack entry (unbuilt, named)."""
    if isinstance(layer, ConvBlock):
        if len(input_shape) != 3:
            raise LayerSpecError(
                f"conv block {index + 1} needs a spatial [h, w, c] input, got {tuple(input_shape)}:"
                " put conv_blocks before dense_units"
            )
        name = f"block{index + 1}"
        out = [
            keras.layers.Conv2D(
                layer.filters, layer.kernel, padding="same", activation="relu", name=f"{name}_conv"
            )
        ]
        if layer.pool > 1:
            out.append(keras.layers.MaxPooling2D(layer.pool, padding="same", name=f"{name}_pool"))
        return out
    out = [keras.layers.Flatten(name="flatten")] if first_dense and len(input_shape) > 1 else []
    return out + [keras.layers.Dense(layer.units, activation="relu", name=f"dense{index + 1}")]


def decoder_layers(
    index: int, layer: LayerSpec, input_shape: Sequence[int], code_shape: Sequence[int]
) -> list[keras.layers.Layer]:
    """Layers mapping one entry's code back to its input's shape (linear output)."""
    prefix = f"decode{index + 1}"
    if isinstance(layer, ConvBlock):
        out: list[keras.layers.Layer] = []
        if layer.pool > 1:
            out.append(keras.layers.UpSampling2D(layer.pool, name=f"{prefix}_up"))
            extra_h = code_shape[0] * layer.pool - input_shape[0]
            extra_w = code_shape[1] * layer.pool - input_shape[1]
            if extra_h or extra_w:
                out.append(
                    keras.layers.Cropping2D(((0, extra_h), (0, extra_w)), name=f"{prefix}_crop")
                )
        out.append(
            keras.layers.Conv2D(
                input_shape[-1], layer.kernel, padding="same", name=f"{prefix}_conv"
            )
        )
        return out
    size = int(np.prod(input_shape))
    out = [keras.layers.Dense(size, name=f"{prefix}_dense")]
    if len(input_shape) > 1:
        out.append(keras.layers.Reshape(tuple(input_shape), name=f"{prefix}_reshape"))
    return out


class MaskingNoise(keras.layers.Layer):
    """Zeroes each input value with probability `rate` while training (no rescaling)."""

    def __init__(self, rate: float, seed: int = 0, **kwargs):
        super().__init__(**kwargs)
        self.rate = rate
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, inputs, training=None):
        if not training or self.rate <= 0:
            return inputs
        keep = keras.random.uniform(keras.ops.shape(inputs), seed=self.seed_generator)
        return keras.ops.where(keep >= self.rate, inputs, keras.ops.zeros_like(inputs))


def _noise_layer(config: PretrainConfig, index: int) -> keras.layers.Layer | None:
    if config.noise == "gaussian" and config.noise_level > 0:
        return keras.layers.GaussianNoise(
            config.noise_level, seed=config.seed + index, name=f"noise{index + 1}"
        )
    if config.noise == "masking" and config.noise_level > 0:
        return MaskingNoise(config.noise_level, seed=config.seed + index, name=f"noise{index + 1}")
    return None


def _apply(layers: Sequence[keras.layers.Layer], x):
    for layer in layers:
        x = layer(x)
    return x


def build_encoder(
    layers: Sequence[LayerSpec], image_shape: Sequence[int], seed: int = 0
) -> keras.Model:
    """The same encoder architecture, freshly initialized (seeded): the from-scratch
    counterpart of a pretrained one (same layer names, same shapes)."""
    keras.utils.set_random_seed(seed)
    image = keras.Input(tuple(image_shape), name="image")
    x, seen_dense = image, False
    for index, spec in enumerate(layers):
        x = _apply(encoder_layers(index, spec, x.shape[1:], first_dense=not seen_dense), x)
        seen_dense = seen_dense or isinstance(spec, DenseLayer)
    return keras.Model(image, x, name="layerwise_encoder")


# --- the level caches --------------------------------------------------------------------
class LevelCache:
    """One level's outputs for every image: a float32 .npy memory map on disk."""

    def __init__(self, path: str, shape: Sequence[int]):
        self.path = path
        self.array = np.lib.format.open_memmap(
            path, mode="w+", dtype=np.float32, shape=tuple(shape)
        )

    @property
    def item_shape(self) -> tuple[int, ...]:
        return tuple(self.array.shape[1:])

    def __len__(self) -> int:
        return int(self.array.shape[0])

    def batches(self, batch_size: int) -> Iterable[tuple[int, np.ndarray]]:
        for start in range(0, len(self), batch_size):
            yield start, np.asarray(self.array[start : start + batch_size])

    def close(self) -> None:
        self.array.flush()

    def delete(self) -> None:
        """Removes the file; the space is freed once the last view of the map is gone."""
        del self.array
        os.remove(self.path)


class CacheBatches(keras.utils.PyDataset):
    """(x, x) batches read from a level cache: only one batch is in memory at a time.

    With a seed the order is reshuffled every epoch (indices sorted within a batch, so
    reads from the memory map stay mostly sequential); without one it is file order.
    """

    def __init__(self, cache: LevelCache, batch_size: int, seed: int | None = None):
        super().__init__()
        self.cache, self.batch_size = cache, batch_size
        self._rng = np.random.default_rng(seed) if seed is not None else None
        self._order = np.arange(len(cache))
        self.on_epoch_end()

    def __len__(self) -> int:
        return -(-len(self.cache) // self.batch_size)

    def __getitem__(self, index: int):
        rows = np.sort(self._order[index * self.batch_size : (index + 1) * self.batch_size])
        batch = np.asarray(self.cache.array[rows])
        return batch, batch

    def on_epoch_end(self) -> None:
        if self._rng is not None:
            self._order = self._rng.permutation(len(self.cache))


def fill_from_batches(
    path: str, count: int, item_shape: Sequence[int], batches: Iterable[np.ndarray]
) -> LevelCache:
    """Writes level 0 (the preprocessed images) from a stream of batches."""
    cache = LevelCache(path, (count, *item_shape))
    written = 0
    for batch in batches:
        batch = np.asarray(batch, np.float32)
        if written + len(batch) > count:
            raise ValueError(f"more images than the {count} counted; the input changed")
        cache.array[written : written + len(batch)] = batch
        written += len(batch)
    if written != count:
        raise ValueError(f"{written} images written, {count} counted; the input changed")
    cache.close()
    return cache


def _next_level(
    layers: Sequence[keras.layers.Layer], source: LevelCache, path: str, batch_size: int
) -> LevelCache:
    """Runs one trained layer group over the previous level's cache, once."""
    probe = np.asarray(_apply(layers, source.array[:1]))
    target = LevelCache(path, (len(source), *probe.shape[1:]))
    for start, batch in source.batches(batch_size):
        target.array[start : start + len(batch)] = np.asarray(_apply(layers, batch))
    target.close()
    return target


# --- training ----------------------------------------------------------------------------
@dataclasses.dataclass
class LayerResult:
    """What one level's training did."""

    name: str
    input_shape: tuple[int, ...]
    code_shape: tuple[int, ...]
    trainable: list[str]  # weights that this stage trained (the new layer + its decoder)
    frozen_below: list[str]  # lower encoder layers, represented only by their cache
    loss: list[float]
    val_loss: list[float]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass
class PretrainResult:
    """The assembled encoder and the per-layer history."""

    encoder: keras.Model
    layers: list[LayerResult]
    decoders: list[list[keras.layers.Layer]]

    def reconstruct(self, images: np.ndarray, depth: int) -> np.ndarray:
        """Images through encoder layers 1..depth and back through decoders depth..1."""
        x = images
        for group in self.encoder_groups[:depth]:
            x = _apply(group, x)
        for decoder in reversed(self.decoders[:depth]):
            x = _apply(decoder, x)
        return np.asarray(x)

    encoder_groups: list[list[keras.layers.Layer]] = dataclasses.field(default_factory=list)


StageCallback = Callable[[int, list[list[keras.layers.Layer]]], None]


def pretrain(
    train: LevelCache,
    layers: Sequence[LayerSpec],
    config: PretrainConfig,
    workdir: str,
    *,
    validation: LevelCache | None = None,
    on_stage_end: StageCallback | None = None,
) -> PretrainResult:
    """Greedy layer-wise pretraining of an encoder stack.

    Args:
        train: level 0: the preprocessed training images [n, h, w, 3].
        layers: the stack, lowest first (parse_layers).
        config: epochs per layer, batch size, learning rate, noise, seed.
        workdir: where the level caches (.npy memory maps) are written.
        validation: optional level 0 of held-out images; its reconstruction loss is
            logged per epoch (it never influences training).
        on_stage_end: called after each level with (level index, the encoder layer
            groups trained so far); tests use it to check the lower layers stay frozen.

    Returns:
        The encoder (image -> top code) and, per level, its losses and which weights
        trained while the lower ones stayed frozen.
    """
    keras.utils.set_random_seed(config.seed)
    os.makedirs(workdir, exist_ok=True)
    image_shape = train.item_shape
    groups: list[list[keras.layers.Layer]] = []
    decoders: list[list[keras.layers.Layer]] = []
    results: list[LayerResult] = []
    level, val_level = train, validation
    seen_dense = False
    for index, spec in enumerate(layers):
        name = block_name(index, spec)
        in_shape = level.item_shape
        group = encoder_layers(index, spec, in_shape, first_dense=not seen_dense)
        seen_dense = seen_dense or isinstance(spec, DenseLayer)
        inputs = keras.Input(in_shape, name=f"{name}_input")
        noise = _noise_layer(config, index)
        code = _apply(group, noise(inputs) if noise is not None else inputs)
        code_shape = tuple(int(d) for d in code.shape[1:])
        decoder = decoder_layers(index, spec, in_shape, code_shape)
        autoencoder = keras.Model(inputs, _apply(decoder, code), name=f"{name}_autoencoder")
        autoencoder.compile(optimizer=keras.optimizers.Adam(config.learning_rate), loss="mse")
        frozen = [w.path for g in groups for layer in g for w in layer.weights]
        trainable = [w.path for w in autoencoder.trainable_weights]
        history = autoencoder.fit(
            CacheBatches(level, config.batch_size, seed=config.seed + index),
            epochs=config.epochs_per_layer,
            validation_data=(
                CacheBatches(val_level, config.batch_size) if val_level is not None else None
            ),
            verbose=0,
        ).history
        result = LayerResult(
            name=name,
            input_shape=tuple(int(d) for d in in_shape),
            code_shape=code_shape,
            trainable=trainable,
            frozen_below=frozen,
            loss=[float(v) for v in history["loss"]],
            val_loss=[float(v) for v in history.get("val_loss", [])],
        )
        logging.info(
            "layer-wise pretraining: %s %s -> %s, reconstruction loss %.5f -> %.5f%s",
            name,
            result.input_shape,
            code_shape,
            result.loss[0],
            result.loss[-1],
            f" (held out {result.val_loss[-1]:.5f})" if result.val_loss else "",
        )
        groups.append(group)
        decoders.append(decoder)
        results.append(result)
        if on_stage_end is not None:
            on_stage_end(index, groups)
        if index + 1 < len(layers):  # the next level's input, computed once
            previous = (level, val_level)
            level = _next_level(
                group, level, os.path.join(workdir, f"level{index + 1}.npy"), config.batch_size
            )
            if val_level is not None:
                val_level = _next_level(
                    group,
                    val_level,
                    os.path.join(workdir, f"val_level{index + 1}.npy"),
                    config.batch_size,
                )
            # Disk holds two levels at a time, not the sum of all: a level this function
            # wrote is deleted once the next one exists (the caller's level 0 is kept).
            if index > 0:
                for cache in previous:
                    if cache is not None:
                        cache.delete()
    image = keras.Input(image_shape, name="image")
    x = image
    for group in groups:
        x = _apply(group, x)
    stacked = keras.Model(image, x, name="layerwise_encoder")
    # Rebuilt from its config so that each layer has this one graph node: the trained
    # layer objects were first called inside the autoencoders, and cutting the model at
    # a layer (layer.output) must see the encoder's graph, as after a save and a load.
    encoder = keras.Model.from_config(stacked.get_config())
    encoder.set_weights(stacked.get_weights())
    return PretrainResult(encoder=encoder, layers=results, decoders=decoders, encoder_groups=groups)
