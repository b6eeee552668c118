"""The Evaluator's baseline: the latest blessed model other than the candidate itself.

`LatestBlessedOtherModelStrategy`, for a `tfx.dsl.Resolver` with inputs MODEL_KEY (every
Model), MODEL_BLESSING_KEY (every ModelBlessing) and CANDIDATE_KEY (the Trainer's
output): TFX's LatestBlessedModelStrategy applied to the models that are not the
candidate. It returns the latest blessed Model and its ModelBlessing (empty lists when
there is none) and the candidate unchanged. Why: docs/ARCHITECTURE.md, "Evaluator and
Pusher".
"""

from __future__ import annotations

from absl import logging
from tfx import types
from tfx.dsl.components.common import resolver
from tfx.dsl.input_resolution.strategies.latest_blessed_model_strategy import (
    LatestBlessedModelStrategy,
)

MODEL_KEY = "model"
MODEL_BLESSING_KEY = "model_blessing"
CANDIDATE_KEY = "candidate"


class LatestBlessedOtherModelStrategy(resolver.ResolverStrategy):
    """The latest blessed Model (and its ModelBlessing) that is not the candidate."""

    def resolve_artifacts(
        self, store, input_dict: dict[str, list[types.Artifact]]
    ) -> dict[str, list[types.Artifact]] | None:
        del store
        candidate_list = list(input_dict.get(CANDIDATE_KEY, []))
        candidates = {artifact.id for artifact in candidate_list}
        models = [m for m in input_dict.get(MODEL_KEY, []) if m.id not in candidates]
        blessings = list(input_dict.get(MODEL_BLESSING_KEY, []))
        if not models or not blessings:
            logging.info("baseline for candidate model(s) %s: none", sorted(candidates))
            return {MODEL_KEY: [], MODEL_BLESSING_KEY: [], CANDIDATE_KEY: candidate_list}
        # pylint: disable-next=protected-access (the same selection as TFX's strategy)
        result = LatestBlessedModelStrategy()._resolve(
            {MODEL_KEY: models, MODEL_BLESSING_KEY: blessings}, MODEL_KEY, MODEL_BLESSING_KEY
        )
        logging.info(
            "baseline for candidate model(s) %s: %s",
            sorted(candidates),
            [m.uri for m in result[MODEL_KEY]] or "none (no other blessed model)",
        )
        # Every input key must come back: the resolver node's outputs mirror its inputs.
        return {**result, CANDIDATE_KEY: candidate_list}
