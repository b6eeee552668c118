"""A Beam CombineFn that sums dicts of named counts (ImageExampleGen's ingest counts)."""

from collections.abc import Iterable, Sequence

import apache_beam as beam


class TallyFn(beam.CombineFn):
    """Sums dicts of counts; the result has every name in `names` (0 when absent)."""

    def __init__(self, names: Sequence[str]):
        self._names = tuple(names)

    def create_accumulator(self) -> dict:
        return dict.fromkeys(self._names, 0)

    def add_input(self, accumulator: dict, tally: dict) -> dict:
        for name, value in tally.items():
            accumulator[name] += value
        return accumulator

    def merge_accumulators(self, accumulators: Iterable[dict]) -> dict:
        merged = self.create_accumulator()
        for accumulator in accumulators:
            self.add_input(merged, accumulator)
        return merged

    def extract_output(self, accumulator: dict) -> dict:
        return accumulator
