"""Driver of ImageExampleGen: puts a fingerprint of the input folder in exec_properties.

TFX keys its cache on the component's execution properties. input_base alone does not
change when files are added or edited, so without this driver a second run would reuse
stale examples. The driver runs before the cache lookup (see
tfx/orchestration/portable/launcher.py) and adds INPUT_FINGERPRINT_KEY =
ingest.fingerprint(input_base); a changed folder means a changed key and a new run.

Like TFX's own ExampleGen driver it implements both driver interfaces: the portable
one (run, used by LocalDagRunner / BeamDagRunner) and the legacy one
(resolve_exec_properties). The KubeflowV2 runner does not run custom drivers.
"""

from typing import Any

from tfx.dsl.components.base import base_driver
from tfx.orchestration import data_types, data_types_utils, metadata
from tfx.orchestration.portable import base_driver as portable_base_driver
from tfx.orchestration.portable import data_types as portable_data_types
from tfx.proto.orchestration import driver_output_pb2

from components.image_example_gen import ingest, spec


def with_fingerprint(exec_properties: dict[str, Any]) -> dict[str, Any]:
    """A copy of exec_properties with INPUT_FINGERPRINT_KEY set from input_base.

    Raises:
      ValueError: if input_base does not exist (the message names the fix).
    """
    resolved = dict(exec_properties)
    resolved[spec.INPUT_FINGERPRINT_KEY] = ingest.fingerprint(exec_properties[spec.INPUT_BASE_KEY])
    return resolved


class Driver(base_driver.BaseDriver, portable_base_driver.BaseDriver):
    """Adds the input folder's fingerprint to the execution properties."""

    def __init__(self, metadata_handle: metadata.Metadata):
        base_driver.BaseDriver.__init__(self, metadata_handle)
        portable_base_driver.BaseDriver.__init__(self, metadata_handle)

    def resolve_exec_properties(
        self,
        exec_properties: dict[str, Any],
        pipeline_info: data_types.PipelineInfo,
        component_info: data_types.ComponentInfo,
    ) -> dict[str, Any]:
        """Legacy driver interface: returns exec_properties with the fingerprint."""
        del pipeline_info, component_info
        return with_fingerprint(exec_properties)

    def run(
        self, execution_info: portable_data_types.ExecutionInfo
    ) -> driver_output_pb2.DriverOutput:
        """Portable driver interface: all exec_properties plus the fingerprint."""
        result = driver_output_pb2.DriverOutput()
        for key, value in with_fingerprint(execution_info.exec_properties).items():
            if value is not None:
                data_types_utils.set_metadata_value(result.exec_properties[key], value)
        return result
