"""Validation of one image file's bytes for ImageExampleGen (no TFX, no Beam).

read_image never raises for bad input: it returns an ImageResult whose `reason` says
what is wrong and how to fix it. A kept image is one that Pillow fully decodes and
that components.common.preprocessing.decode_image (the one decoder Transform, the bottleneck
cache and the served model use) decodes;
images only Pillow can read are transcoded to PNG, large ones optionally downscaled.
"""

from __future__ import annotations

import io
import logging
import re
from typing import NamedTuple

from PIL import Image, UnidentifiedImageError

# Pillow format name -> the lowercase name stored in FORMAT_KEY. MPO is a multi-picture
# JPEG (many cameras write it); TensorFlow decodes its first picture as a JPEG.
ACCEPTED_FORMATS = {"JPEG": "jpeg", "MPO": "jpeg", "PNG": "png", "GIF": "gif", "BMP": "bmp"}


class ImageResult(NamedTuple):
    """What read_image decided about one file; `reason` is non-empty when quarantined."""

    data: bytes = b""  # the bytes to store (original unless transcoded or downscaled)
    image_format: str = ""  # format of `data`: jpeg | png | gif | bmp
    height: int = 0  # original height
    width: int = 0  # original width
    transcoded: bool = False
    downscaled: bool = False
    reason: str = ""


def allow_pixels(max_pixels: int) -> None:
    """Raises Pillow's process-wide decompression-bomb guard to at least max_pixels.

    read_image enforces max_pixels itself from the header; Pillow's own guard (which
    raises at 2x its limit) must not reject images this component is told to accept.
    The guard is only ever raised, never lowered or disabled.
    """
    if Image.MAX_IMAGE_PIXELS is not None and Image.MAX_IMAGE_PIXELS < max_pixels:
        Image.MAX_IMAGE_PIXELS = max_pixels


def _tf_decodes(data: bytes) -> bool:
    """True when TensorFlow decodes `data` the way Transform and serving will."""
    import tensorflow as tf  # heavy: imported on first use, then cached by Python

    from components.common import preprocessing

    try:
        preprocessing.decode_image(tf.constant(data))
    except tf.errors.OpError:
        return False
    return True


def _has_alpha(img: Image.Image) -> bool:
    return img.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in img.info


def _encode(img: Image.Image, image_format: str) -> bytes:
    """Encodes `img` as PNG, or as JPEG (quality 95) when image_format is "jpeg"."""
    out = io.BytesIO()
    if image_format == "jpeg":
        img = img if img.mode in ("RGB", "L") else img.convert("RGB")
        img.save(out, "JPEG", quality=95)
    else:
        if img.mode not in ("RGB", "RGBA", "L", "LA", "I;16"):
            img = img.convert("RGBA" if _has_alpha(img) else "RGB")
        img.save(out, "PNG")
    return out.getvalue()


def _downscale(img: Image.Image, image_format: str, max_side: int) -> tuple[bytes, str]:
    """Resizes so the longest side is max_side (LANCZOS, aspect kept); re-encodes."""
    width, height = img.size
    scale = max_side / max(width, height)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    if img.mode not in ("RGB", "RGBA", "L", "LA", "I;16"):
        img = img.convert("RGBA" if _has_alpha(img) else "RGB")
    out_format = "jpeg" if image_format == "jpeg" else "png"
    return _encode(img.resize(size, Image.Resampling.LANCZOS), out_format), out_format


def _open(data: bytes, max_pixels: int) -> Image.Image | str:
    """Opens (header only) with Pillow; returns the image or a quarantine reason."""
    try:
        return Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as err:
        # Only past 2x Pillow's guard, which allow_pixels keeps >= max_pixels.
        found = re.search(r"\((\d+) pixels\)", str(err))
        pixels = found.group(1) if found else "too many"
        return (
            f"{pixels} pixels exceeds max_pixels={max_pixels}; raise max_pixels or "
            "downscale the file (Pillow refused it as a possible decompression bomb)"
        )
    except UnidentifiedImageError:
        return "not an image Pillow can identify; remove it or convert it to PNG or JPEG"
    # Pillow's format plugins raise many exception types on hostile headers.
    except Exception as err:  # noqa: BLE001
        return f"unreadable image header: {type(err).__name__}: {err}"


def read_image(data: bytes, relpath: str, max_pixels: int, max_side: int = 0) -> ImageResult:
    """Validates one file's bytes; never raises for bad input.

    Args:
      data: the original file bytes.
      relpath: path relative to the input root (for log messages).
      max_pixels: width * height above this is quarantined (checked from the header,
        before decoding, so decompression bombs are never decoded).
      max_side: when > 0, images whose longest side is larger are downscaled to it.

    Returns:
      An ImageResult: the bytes to store and their format, the original height and
      width, transcoded/downscaled flags; or only `reason` when quarantined.
    """
    if not data:
        return ImageResult(reason="empty file (0 bytes)")
    allow_pixels(max_pixels)
    img = _open(data, max_pixels)
    if isinstance(img, str):
        return ImageResult(reason=img)
    image_format = ACCEPTED_FORMATS.get(img.format or "")
    if image_format is None:
        return ImageResult(reason=f"unsupported format {img.format}; convert to PNG or JPEG")
    width, height = img.size
    if width * height > max_pixels:
        return ImageResult(
            reason=f"{width} x {height} = {width * height} pixels exceeds "
            f"max_pixels={max_pixels}; raise max_pixels or downscale the file"
        )
    try:
        img.load()  # GIF: loads the first frame, which is what TensorFlow decodes too
    # Pillow's decoders raise many exception types on truncated or corrupt data.
    except Exception as err:  # noqa: BLE001
        return ImageResult(reason=f"corrupt or truncated image: {err}")
    return _finish(img, data, image_format, max_side, relpath)


def _finish(
    img: Image.Image, data: bytes, image_format: str, max_side: int, relpath: str
) -> ImageResult:
    """Downscales or transcodes a decoded image as needed; checks TensorFlow decodes it."""
    width, height = img.size
    stored, transcoded, downscaled = data, False, False
    if max_side > 0 and max(width, height) > max_side:
        stored, image_format = _downscale(img, image_format, max_side)
        downscaled = True
    elif not _tf_decodes(data):
        logging.info("Transcoding %s to PNG: TensorFlow cannot decode it", relpath)
        stored, image_format, transcoded = _encode(img, "png"), "png", True
    if (transcoded or downscaled) and not _tf_decodes(stored):
        return ImageResult(reason="TensorFlow cannot decode it even after re-encoding to PNG")
    return ImageResult(stored, image_format, height, width, transcoded, downscaled)
