"""Prometheus metrics through ``prometheus_client``: requests and latency by route, errors, index gauges, and the
process's own (CPU, memory, open files, start time).

Each app has a registry of its own (several apps in one process, as in the tests, never share counts);
``GET /metrics`` renders it in the text exposition format.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class _Gauges(Collector):
    """Values read at scrape time (index size, write queue depth)."""

    def __init__(self) -> None:
        self.reads: dict[str, Callable[[], float]] = {}

    def collect(self) -> Iterator[GaugeMetricFamily]:
        for name, read in sorted(self.reads.items()):
            yield GaugeMetricFamily(name, name.removeprefix("xmodal_").replace("_", " "), value=read())


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
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        self._requests.labels(method, route, str(status)).inc()
        self._latency.labels(route).observe(seconds)
        if status >= 400:
            self._errors.labels(route, "server" if status >= 500 else "client").inc()

    def gauge(self, name: str, read: Callable[[], float]) -> None:
        """A value read at scrape time (index size, write queue depth)."""
        self._gauges.reads[name] = read

    def render(self) -> bytes:
        return generate_latest(self.registry)
