"""Checks of a validated config against the files it names, before the DAG starts.

The config loader checks each field's type, range and choices; this checks what only
the disk can tell, so that a missing schema or a bad cut layer is reported in seconds
instead of after components ran: every local path the config names exists (schema,
data roots, weights, model files), the schema parses and names the classes, the class
folders of a labelled data root are exactly the schema's classes, and the cut layer
(or the number of top layers to drop) exists in the base network's architecture.
Remote paths (gs://...) are left to the components, which read them with the
pipeline's credentials. All problems are reported together, each with its fix.
"""

from __future__ import annotations

import os

from components.common.artifact_io import is_remote
from pipeline.config import KIND_LAYERWISE, ConfigError, PipelineConfig


def _missing(field: str, path: str, kind: str) -> str | None:
    """A problem sentence when a local file or folder is not there, else None."""
    if not path or is_remote(path):
        return None
    want_dir = kind == "folder"
    if not os.path.exists(path):
        return f"{field}: {path} does not exist; point it at an existing {kind}"
    if want_dir and not os.path.isdir(path):
        return f"{field}: {path} is a file, not a folder; point it at a folder"
    if not want_dir and os.path.isdir(path):
        return f"{field}: {path} is a folder, not a file; point it at the {kind}"
    return None


def _schema_classes(field: str, path: str, problems: list[str]) -> list[str] | None:
    from components.common.schema import class_names_from_schema

    try:
        return class_names_from_schema(path)
    except Exception as error:  # noqa: BLE001 - any parse error is the user's to fix
        problems.append(f"{field}: {path} is not a usable schema ({error})")
        return None


def _class_folder_problems(field: str, root: str, classes: list[str], schema: str) -> list[str]:
    """Class folders vs the schema's classes (a new folder, or a class with no folder)."""
    from components.image_example_gen.listing import list_classes

    folders = list_classes(root)
    extra = sorted(set(folders) - set(classes))
    absent = sorted(set(classes) - set(folders))
    problems = []
    if extra:
        problems.append(
            f"{field}: {root} has class folders that the schema {schema} does not list: "
            f"{extra}; if they are new classes, regenerate the schema with `tfx-transfer "
            f"schema --data-root {root} --out {schema}`, review and commit it; otherwise "
            "move them out of the data root"
        )
    if absent:
        problems.append(
            f"{field}: the schema {schema} lists classes with no folder under {root}: "
            f"{absent}; add a folder of labelled images for each, or regenerate the schema "
            "without them"
        )
    return problems


def _base_architecture(config: PipelineConfig):
    """The base network's architecture (weights not loaded) as a Keras model."""
    base, image = config.base_model, config.image
    if base.kind == KIND_LAYERWISE:
        from components.layerwise_pretrainer import stack

        layerwise = base.layerwise
        layers = stack.parse_layers(layerwise.conv_block_dicts(), layerwise.dense_units)
        return stack.build_encoder(layers, (image.height, image.width, 3), base.seed)
    from components.base_model_gen import bases

    # The architecture alone: the weights file was checked by path and is loaded by
    # BaseModelGen; a user's model file must be loaded to know its layers.
    return bases.make_base(
        base.kind, image.height, image.width, name=base.name, path=base.path, seed=base.seed
    )


def _cut_problem(config: PipelineConfig) -> str | None:
    from components.common import model_surgery

    base = config.base_model
    try:
        model = _base_architecture(config)
        if base.cut_layer == model_surgery.CUT_AUTO:
            model_surgery.resolve_cut_candidates(model, base.cut_candidates)
        else:
            model_surgery.resolve_cut_layer(model, base.cut_layer, base.drop_top_layers)
    except ValueError as error:
        return f"base_model: {error}"
    return None


def _paths(config: PipelineConfig) -> list[tuple[str, str, str]]:
    """(field, path, what it must be) of every path the config names."""
    paths = [("schema", config.schema, "schema file"), ("data.root", config.data.root, "folder")]
    base = config.base_model
    if base is not None:
        paths += [
            ("base_model.weights", base.weights, "weights file"),
            ("base_model.path", base.path, "model file"),
        ]
        if base.source_task is not None:
            source = base.source_task
            paths += [
                ("base_model.source_task.data_root", source.data_root, "folder"),
                ("base_model.source_task.schema", source.schema, "schema file"),
            ]
        if base.layerwise is not None:
            paths.append(("base_model.layerwise.data_root", base.layerwise.data_root, "folder"))
    return paths


def _labelled_sets(config: PipelineConfig) -> list[tuple[str, str, str, str]]:
    """(schema field, schema, data field, data root) of each labelled image folder."""
    sets = []
    if config.data.labelled:
        sets.append(("schema", config.schema, "data.root", config.data.root))
    base = config.base_model
    if base is not None and base.source_task is not None:
        source = base.source_task
        sets.append(
            (
                "base_model.source_task.schema",
                source.schema,
                "base_model.source_task.data_root",
                source.data_root,
            )
        )
    return sets


def problems(config: PipelineConfig) -> list[str]:
    """Every problem found, one sentence each with its fix; [] when all is well."""
    found = [_missing(field, path, kind) for field, path, kind in _paths(config)]
    result = [problem for problem in found if problem]
    bad_fields = {problem.split(":", 1)[0] for problem in result}
    for schema_field, schema, data_field, root in _labelled_sets(config):
        if schema_field in bad_fields or is_remote(schema):
            continue
        classes = _schema_classes(schema_field, schema, result)
        if classes is not None and data_field not in bad_fields and not is_remote(root):
            result += _class_folder_problems(data_field, root, classes, schema)
    if config.base_model is not None and not result:
        cut = _cut_problem(config)
        if cut:
            result.append(cut)
    return result


def check(config: PipelineConfig) -> None:
    """Raises ConfigError listing every problem (see `problems`)."""
    found = problems(config)
    if found:
        raise ConfigError("\n  ".join([f"{len(found)} problem(s) found before the run:", *found]))
