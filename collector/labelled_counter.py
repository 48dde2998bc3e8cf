"""A counter family with one label, counted by hand, with every label value shown from
the start (at 0, so `rate()` sees the first event) and no `_created` series."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector, CollectorRegistry


class LabelledCounter(Collector):
    """`counts[value] += 1` counts one event; `collect()` shows every value counted so
    far, those given at the start first."""

    def __init__(
        self,
        registry: CollectorRegistry,
        name: str,
        documentation: str,
        label: str,
        values: Iterable[str],
    ) -> None:
        self._name, self._documentation, self._label = name, documentation, label
        self.counts = dict.fromkeys(values, 0)
        registry.register(self)

    def count(self, value: str) -> None:
        self.counts[value] = self.counts.get(value, 0) + 1

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily(self._name, self._documentation, labels=[self._label])
        for value, count in self.counts.items():
            family.add_metric([value], count)
        yield family
