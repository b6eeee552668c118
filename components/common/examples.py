"""The tf.Example contract: feature names and split names, declared once.

ImageExampleGen writes these features (BottleneckCache adds BOTTLENECK_KEY), Transform,
the bottleneck cache, the Trainer and the served model read them, and clients (the
predict CLI, TF Serving requests) build them. This module imports nothing, so serving
code and clients read a feature name without loading TFX.
"""

# --- tf.Example feature names -------------------------------------------------
IMAGE_KEY = "image"  # bytes: the encoded image (original bytes unless downscaled)
LABEL_KEY = "label"  # int64: index into the class vocabulary; -1 when unlabelled
LABEL_NAME_KEY = "label_name"  # bytes: the class folder name; b"" when unlabelled
IMAGE_ID_KEY = "image_id"  # bytes: sha256 hex of the original file's content
SOURCE_PATH_KEY = "source_path"  # bytes: utf-8 path relative to the input root
HEIGHT_KEY = "height"  # int64: original height in pixels
WIDTH_KEY = "width"  # int64: original width in pixels
FORMAT_KEY = "format"  # bytes: jpeg | png | gif | bmp

UNLABELLED = -1

# --- splits -----------------------------------------------------------------------
TRAIN_SPLIT = "train"
EVAL_SPLIT = "eval"
SPLITS = (TRAIN_SPLIT, EVAL_SPLIT)

# --- added by BottleneckCache to its output tf.Examples ----------------------------------
# Its output records also keep every feature above (image, label, label_name, image_id...),
# so a fine-tuning phase can read the images.
BOTTLENECK_KEY = "bottleneck"  # float list: the frozen layers' output, flattened


def candidate_key(layer: str) -> str:
    """The float-list feature of one candidate cut's vector (``cut_layer: auto``)."""
    return f"{BOTTLENECK_KEY}@{layer}"
