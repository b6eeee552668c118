"""Reading the checked-in tf.Example schema: the class names it fixes.

The schema file (written by ``tfx-transfer schema``, imported by ImportSchemaGen)
holds the class vocabulary as the string domain of the label_name feature, in
label-index order. The gate, the Trainer and the preflight checks read it here.
"""

from __future__ import annotations

from google.protobuf import text_format
from tensorflow_metadata.proto.v0 import schema_pb2

from components.common.examples import LABEL_NAME_KEY

SCHEMA_FILE = "schema.pbtxt"  # the file ImportSchemaGen writes in its artifact folder


def read_schema(path: str) -> schema_pb2.Schema:
    """Reads a text schema file (local or a tf.io.gfile URL)."""
    import tensorflow as tf

    with tf.io.gfile.GFile(path) as f:
        return text_format.Parse(f.read(), schema_pb2.Schema())


def class_names_from_schema(schema_path: str | None) -> list[str]:
    """The class names: the label_name feature's string domain, in label-index order.

    Accepts the domain inline in the feature (``tfx-transfer schema`` writes it so) or
    as a schema-level string_domain referenced by name.

    Raises:
        ValueError: no schema, no label_name feature or domain, or fewer than 2 names.
    """
    if not schema_path:
        raise ValueError(
            "the Trainer needs its schema input: the label_name string domain gives the class names"
        )
    parsed = read_schema(schema_path)
    feature = next((f for f in parsed.feature if f.name == LABEL_NAME_KEY), None)
    names: list[str] = []
    if feature is not None and feature.HasField("string_domain"):
        names = list(feature.string_domain.value)
    elif feature is not None and feature.domain:
        domains = {d.name: d for d in parsed.string_domain}
        if feature.domain in domains:
            names = list(domains[feature.domain].value)
    if len(names) < 2:
        raise ValueError(
            f"schema {schema_path}: feature {LABEL_NAME_KEY!r} must have a string domain of "
            f"at least 2 class names (got {names}); write it with `tfx-transfer schema`"
        )
    return names
