"""ServingCheck: bless a model for push only if it answers the way TF Serving loads it.

Inputs: ``model`` (the Trainer's Model) and ``examples`` (the first ``num_examples``
images of the eval split become the requests). ``check.check_servable`` loads the
serving model in a fresh Python process as TF Serving does and compares its answers
with the in-process model's, within ``timeout_seconds``. Output: ``blessing``, the
standard ``InfraBlessing`` that the standard Pusher reads (``infra_blessing``): custom
property ``blessed`` 1 or 0 and a file ``INFRA_BLESSED`` / ``INFRA_NOT_BLESSED`` (as
InfraValidator writes them) holding the reason, plus custom property ``reason`` (a
sentence), ``serving_check.json`` and the probe's report and log. A model that is not
servable does not fail the run: it is not pushed. Why not InfraValidator:
docs/ARCHITECTURE.md, "ServingCheck".
"""

import json
import os
import tempfile

from absl import logging
from tfx.dsl.component.experimental.annotations import InputArtifact, OutputArtifact, Parameter
from tfx.dsl.component.experimental.decorators import component
from tfx.dsl.io import fileio
from tfx.types import artifact_utils, standard_artifacts
from tfx.utils import path_utils

from components.common.examples import EVAL_SPLIT
from components.serving_check import check

BLESSED_KEY = "blessed"  # what tfx's Pusher reads (model_utils.is_infra_validated)
REASON_KEY = "reason"
BLESSED_FILE = "INFRA_BLESSED"
NOT_BLESSED_FILE = "INFRA_NOT_BLESSED"
RESULT_FILE = "serving_check.json"


@component
def ServingCheck(  # noqa: N802 (TFX components are classes by convention)
    model: InputArtifact[standard_artifacts.Model],
    examples: InputArtifact[standard_artifacts.Examples],
    blessing: OutputArtifact[standard_artifacts.InfraBlessing],
    num_examples: Parameter[int] = 8,
    timeout_seconds: Parameter[int] = 900,
) -> None:
    """Blesses the model (InfraBlessing) when it serves under TF Serving's loader."""
    model_dir = path_utils.serving_model_path(model.uri)
    images = check.eval_images(artifact_utils.get_split_uri([examples], EVAL_SPLIT), num_examples)
    with tempfile.TemporaryDirectory() as work_dir:
        result = check.check_servable(model_dir, images, work_dir, float(timeout_seconds))
        _copy_evidence(work_dir, blessing.uri)
    fileio.makedirs(blessing.uri)
    marker = BLESSED_FILE if result.servable else NOT_BLESSED_FILE
    with fileio.open(os.path.join(blessing.uri, marker), "w") as f:
        f.write(result.reason + "\n")
    with fileio.open(os.path.join(blessing.uri, RESULT_FILE), "w") as f:
        json.dump(result.to_dict(), f, indent=2)
    blessing.set_int_custom_property(BLESSED_KEY, int(result.servable))
    blessing.set_string_custom_property(REASON_KEY, result.reason)
    if result.servable:
        logging.info("ServingCheck: servable: %s", result.reason)
    else:
        logging.warning(
            "ServingCheck: NOT servable, the model will not be pushed: %s", result.reason
        )


def _copy_evidence(work_dir: str, uri: str) -> None:
    """The probe's report and log, for a person who wants to see why."""
    fileio.makedirs(uri)
    for name in (check.REPORT_FILE, check.LOG_FILE):
        source = os.path.join(work_dir, name)
        if os.path.exists(source):
            fileio.copy(source, os.path.join(uri, name), overwrite=True)
