"""AnomalyGate: fail the run when ExampleValidator found anomalies.

A Python-function component: its only input is ExampleValidator's ExampleAnomalies
artifact. Components that must not run on bad data (Transform and everything after
it) are made downstream of this gate in `create_pipeline`.
"""

from tfx import v1 as tfx
from tfx.types import artifact_utils

from components.anomaly_gate import gate


@tfx.dsl.components.component
def AnomalyGate(  # noqa: N802 (TFX components are classes by convention)
    anomalies: tfx.dsl.components.InputArtifact[tfx.types.standard_artifacts.ExampleAnomalies],
) -> None:
    """Raises DataAnomalyError naming every anomaly of every split."""
    splits = artifact_utils.decode_split_names(anomalies.split_names)
    gate.check(
        {
            split: gate.read_anomalies(artifact_utils.get_split_uri([anomalies], split))
            for split in splits
        }
    )
