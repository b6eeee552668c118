"""A driver that adds a fingerprint of a component's external input to its properties.

TFX keys its execution cache on the component's execution properties. A path does
not change when the files behind it do, so without a fingerprint a second run would
reuse stale outputs. The driver runs before the cache lookup (see
tfx/orchestration/portable/launcher.py); a changed input means a changed key and a new
execution, an unchanged one is served from the cache.

Like TFX's own ExampleGen driver it implements both driver interfaces: the portable
one (`run`, used by LocalDagRunner) and the legacy one (`resolve_exec_properties`).
The KubeflowV2 runner does not run custom drivers.
"""

from typing import Any

from tfx.dsl.components.base import base_driver
from tfx.orchestration import data_types, data_types_utils, metadata
from tfx.orchestration.portable import base_driver as portable_base_driver
from tfx.orchestration.portable import data_types as portable_data_types
from tfx.proto.orchestration import driver_output_pb2


class FingerprintDriver(base_driver.BaseDriver, portable_base_driver.BaseDriver):
    """Sets exec_properties[FINGERPRINT_KEY] = fingerprint(exec_properties)."""

    FINGERPRINT_KEY: str = ""

    def __init__(self, metadata_handle: metadata.Metadata):
        base_driver.BaseDriver.__init__(self, metadata_handle)
        portable_base_driver.BaseDriver.__init__(self, metadata_handle)

    @classmethod
    def fingerprint(cls, exec_properties: dict[str, Any]) -> str:
        """The fingerprint of the external input named by exec_properties."""
        raise NotImplementedError

    @classmethod
    def with_fingerprint(cls, exec_properties: dict[str, Any]) -> dict[str, Any]:
        """A copy of exec_properties with the fingerprint set."""
        resolved = dict(exec_properties)
        resolved[cls.FINGERPRINT_KEY] = cls.fingerprint(exec_properties)
        return resolved

    def resolve_exec_properties(
        self,
        exec_properties: dict[str, Any],
        pipeline_info: data_types.PipelineInfo,
        component_info: data_types.ComponentInfo,
    ) -> dict[str, Any]:
        """Legacy driver interface: returns exec_properties with the fingerprint."""
        del pipeline_info, component_info
        return self.with_fingerprint(exec_properties)

    def run(
        self, execution_info: portable_data_types.ExecutionInfo
    ) -> driver_output_pb2.DriverOutput:
        """Portable driver interface: all exec_properties plus the fingerprint."""
        result = driver_output_pb2.DriverOutput()
        for key, value in self.with_fingerprint(execution_info.exec_properties).items():
            if value is not None:
                data_types_utils.set_metadata_value(result.exec_properties[key], value)
        return result
