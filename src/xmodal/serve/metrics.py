"""Prometheus text-format metrics: requests and latency histograms by route, errors, index size."""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Callable

BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    """Counters and histograms kept in memory; :meth:`render` writes the exposition format 0.0.4."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: dict[tuple[str, str, int], int] = defaultdict(int)
        self._errors: dict[tuple[str, str], int] = defaultdict(int)
        self._hist: dict[str, list[int]] = {}
        self._sum: dict[str, float] = defaultdict(float)
        self._gauges: dict[str, Callable[[], float]] = {}

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        with self._lock:
            self._requests[(method, route, status)] += 1
            counts = self._hist.setdefault(route, [0] * (len(BUCKETS) + 1))
            counts[next((i for i, b in enumerate(BUCKETS) if seconds <= b), len(BUCKETS))] += 1
            self._sum[route] += seconds
            if status >= 400:
                self._errors[(route, "server" if status >= 500 else "client")] += 1

    def gauge(self, name: str, read: Callable[[], float]) -> None:
        """A value read at scrape time (index size, write queue depth)."""
        self._gauges[name] = read

    def render(self) -> str:
        lines = [
            "# HELP xmodal_requests_total HTTP requests by method, route and status.",
            "# TYPE xmodal_requests_total counter",
        ]
        with self._lock:
            for (method, route, status), n in sorted(self._requests.items()):
                lines.append(f'xmodal_requests_total{{method="{method}",route="{_esc(route)}",status="{status}"}} {n}')
            lines += [
                "# HELP xmodal_errors_total Responses with status >= 400 by route and kind.",
                "# TYPE xmodal_errors_total counter",
            ]
            for (route, kind), n in sorted(self._errors.items()):
                lines.append(f'xmodal_errors_total{{route="{_esc(route)}",kind="{kind}"}} {n}')
            lines += [
                "# HELP xmodal_request_duration_seconds Request latency by route.",
                "# TYPE xmodal_request_duration_seconds histogram",
            ]
            for route, counts in sorted(self._hist.items()):
                total = 0
                for bound, n in zip([*map(str, BUCKETS), "+Inf"], counts, strict=True):
                    total += n
                    labels = f'route="{_esc(route)}",le="{bound}"'
                    lines.append(f"xmodal_request_duration_seconds_bucket{{{labels}}} {total}")
                lines.append(f'xmodal_request_duration_seconds_sum{{route="{_esc(route)}"}} {self._sum[route]:.6f}')
                lines.append(f'xmodal_request_duration_seconds_count{{route="{_esc(route)}"}} {total}')
        for name, read in sorted(self._gauges.items()):
            lines += [f"# TYPE {name} gauge", f"{name} {read():g}"]
        return "\n".join(lines) + "\n"


def _esc(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
