"""Executor of BaseModelGen: build or load the base, write model.keras into `model`."""

from absl import logging
from tfx.dsl.components.base import base_executor
from tfx.types import artifact_utils

from components.base_model_gen import bases, spec
from components.common import model_io


class Executor(base_executor.BaseExecutor):
    """Writes the base network as `<model.uri>/model.keras`."""

    def Do(self, input_dict, output_dict, exec_properties):  # noqa: N802 - TFX's name
        del input_dict
        model_artifact = artifact_utils.get_single_instance(output_dict[spec.MODEL_KEY])
        model = bases.make_base(
            kind=exec_properties[spec.KIND_KEY],
            height=int(exec_properties[spec.HEIGHT_KEY]),
            width=int(exec_properties[spec.WIDTH_KEY]),
            name=exec_properties.get(spec.NAME_KEY) or "",
            weights=exec_properties.get(spec.WEIGHTS_KEY) or "",
            path=exec_properties.get(spec.PATH_KEY) or "",
            seed=int(exec_properties.get(spec.SEED_KEY) or 0),
        )
        path = model_io.save_keras(model, model_artifact.uri)
        model_artifact.set_string_custom_property(spec.PROP_ARCHITECTURE, model.name)
        model_artifact.set_int_custom_property(spec.PROP_LAYERS, len(model.layers))
        logging.info("BaseModelGen wrote %s (%s, %d layers)", path, model.name, len(model.layers))
