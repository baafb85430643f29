"""Prometheus metrics through ``prometheus_client``: requests and latency by route, errors, index gauges, and the
process's own (CPU, memory, open files, start time).

Each app has a registry of its own (several apps in one process, as in the tests, never share counts);
``GET /metrics`` renders it in the text exposition format.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class _Gauges(Collector):
    """Values read at scrape time (index size, write queue depth), each with its labels (none, or e.g. the
    index's name when a server serves several)."""

    def __init__(self) -> None:
        self.reads: dict[str, dict[tuple[tuple[str, str], ...], Callable[[], float]]] = {}

    def collect(self) -> Iterator[GaugeMetricFamily]:
        for name, by_labels in sorted(self.reads.items()):
            doc = name.removeprefix("xmodal_").replace("_", " ")
            if list(by_labels) == [()]:
                yield GaugeMetricFamily(name, doc, value=by_labels[()]())
                continue
            family = GaugeMetricFamily(name, doc, labels=[key for key, _ in next(iter(by_labels))])
            for labels, read in sorted(by_labels.items()):
                family.add_metric([value for _, value in labels], read())
            yield family


class _Counts(Collector):
    """Counters kept elsewhere (the guards' decisions by category and action), read at scrape time."""

    def __init__(self, name: str, doc: str, labels: Sequence[str]) -> None:
        self.name, self.doc, self.labels = name, doc, list(labels)
        self.reads: list[tuple[dict[str, str], Callable[[], Mapping[tuple[str, str], int]]]] = []

    def collect(self) -> Iterator[CounterMetricFamily]:
        extra = sorted({key for fixed, _ in self.reads for key in fixed})
        family = CounterMetricFamily(self.name, self.doc, labels=[*self.labels, *extra])
        for fixed, read in self.reads:
            for values, count in sorted(read().items()):
                family.add_metric([*values, *(fixed.get(key, "") for key in extra)], count)
        yield family


class Metrics:
    """The app's counters, histogram and gauges in a registry of its own; :meth:`render` for ``/metrics``."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._requests = Counter(
            "xmodal_requests", "HTTP requests by method, route and status.", ("method", "route", "status"),
            registry=self.registry,
        )  # fmt: skip
        self._errors = Counter(
            "xmodal_errors",
            "Responses with status >= 400 by route and kind.",
            ("route", "kind"),
            registry=self.registry,
        )
        self._latency = Histogram(
            "xmodal_request_duration_seconds", "Request latency by route.", ("route",), buckets=BUCKETS,
            registry=self.registry,
        )  # fmt: skip
        self._gauges = _Gauges()
        self.registry.register(self._gauges)
        self._counts: dict[str, _Counts] = {}
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        self._requests.labels(method, route, str(status)).inc()
        self._latency.labels(route).observe(seconds)
        if status >= 400:
            self._errors.labels(route, "server" if status >= 500 else "client").inc()

    def gauge(self, name: str, read: Callable[[], float], labels: Mapping[str, str] | None = None) -> None:
        """A value read at scrape time (index size, write queue depth); ``labels`` tell apart several values
        of one name (every value of a name has the same label names)."""
        self._gauges.reads.setdefault(name, {})[tuple(sorted((labels or {}).items()))] = read

    def counts(
        self,
        name: str,
        doc: str,
        labels: Sequence[str],
        read: Callable[[], Mapping[tuple[str, str], int]],
        fixed: Mapping[str, str] | None = None,
    ) -> None:
        """A counter kept elsewhere, read at scrape time: ``read()`` maps label values to counts; ``fixed``
        labels (the index's name) tell apart several sources of one name."""
        collector = self._counts.get(name)
        if collector is None:
            collector = self._counts[name] = _Counts(name, doc, labels)
            self.registry.register(collector)
        collector.reads.append((dict(fixed or {}), read))

    def render(self) -> bytes:
        return generate_latest(self.registry)
