"""The Evaluator's baseline: the latest blessed model other than the candidate itself.

TFX's LatestBlessedModelStrategy resolves the latest blessed model. After a model is
blessed and pushed, an unchanged rerun resolves *that same model* as the baseline, so
Evaluator's inputs change (baseline: none -> the candidate) and it runs again only to
compare the model with itself. Excluding the candidate gives the model that was in
service when the candidate was first evaluated: the same baseline as before, so an
unchanged rerun is served from TFX's cache, and a new candidate is still compared with
the model in service (the latest blessed one, which is not the candidate).
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
