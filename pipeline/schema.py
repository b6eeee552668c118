"""The tf.Example schema of ingested images, built from a class vocabulary.

The schema is checked in under schemas/ (one file per dataset) and brought into the
pipeline by ImportSchemaGen, so that ExampleValidator finds, and AnomalyGate stops, a
run whose data no longer matches what was reviewed: a label outside the vocabulary, a
missing image, an unknown format. The class names are the label_name string domain,
in label-index order (read back by components.common.schema). `tfx-transfer schema`
writes the file for a new dataset; review it and commit it.
"""

from __future__ import annotations

import os

from google.protobuf import text_format
from tensorflow_metadata.proto.v0 import schema_pb2

from components.common import examples as contract

IMAGE_FORMATS = ("jpeg", "png", "gif", "bmp")


def _required_scalar(schema: schema_pb2.Schema, name: str, type_: int) -> schema_pb2.Feature:
    feature = schema.feature.add(name=name, type=type_)
    feature.presence.min_fraction = 1.0
    feature.presence.min_count = 1
    feature.shape.dim.add(size=1)
    return feature


def build_schema(class_names: list[str] | None) -> schema_pb2.Schema:
    """Returns the schema for examples of these classes (None: unlabelled data)."""
    schema = schema_pb2.Schema()
    image = _required_scalar(schema, contract.IMAGE_KEY, schema_pb2.BYTES)
    image.image_domain.SetInParent()
    label = _required_scalar(schema, contract.LABEL_KEY, schema_pb2.INT)
    label.int_domain.is_categorical = True
    label_name = _required_scalar(schema, contract.LABEL_NAME_KEY, schema_pb2.BYTES)
    if class_names:
        label.int_domain.min = 0
        label.int_domain.max = len(class_names) - 1
        label_name.string_domain.name = contract.LABEL_NAME_KEY
        label_name.string_domain.value.extend(class_names)
    else:
        label.int_domain.min = contract.UNLABELLED
        label.int_domain.max = contract.UNLABELLED
    _required_scalar(schema, contract.IMAGE_ID_KEY, schema_pb2.BYTES)
    _required_scalar(schema, contract.SOURCE_PATH_KEY, schema_pb2.BYTES)
    for key in (contract.HEIGHT_KEY, contract.WIDTH_KEY):
        _required_scalar(schema, key, schema_pb2.INT).int_domain.min = 1
    fmt = _required_scalar(schema, contract.FORMAT_KEY, schema_pb2.BYTES)
    fmt.string_domain.name = contract.FORMAT_KEY
    fmt.string_domain.value.extend(IMAGE_FORMATS)
    return schema


def class_names_in(data_root: str) -> list[str]:
    """The class vocabulary of an image folder: its sorted first-level sub-folders."""
    if not os.path.isdir(data_root):
        raise FileNotFoundError(f"data root {data_root!r} is not a folder")
    return sorted(
        name
        for name in os.listdir(data_root)
        if os.path.isdir(os.path.join(data_root, name)) and not name.startswith(".")
    )


def write_schema(schema: schema_pb2.Schema, path: str) -> None:
    """Writes the schema as text (the reviewed, checked-in form)."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text_format.MessageToString(schema))
