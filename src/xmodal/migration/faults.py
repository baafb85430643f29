"""The fault-injection hook of the reindex tests: ``XMODAL_REINDEX_FAULT=<point>`` kills the process there.

Points: ``batch`` (after the build commits a batch), and the switch's ``prepared``, ``locked``, ``deleted``,
``copied``, ``written`` and ``committed`` (:mod:`.switch`). Unset (always, outside tests), it does nothing.
"""

from __future__ import annotations

import os
import signal

FAULT_ENV = "XMODAL_REINDEX_FAULT"


def fault(point: str) -> None:
    """Die here, as ``kill -9`` would, when ``$XMODAL_REINDEX_FAULT`` names ``point``."""
    if os.environ.get(FAULT_ENV) == point:
        os.kill(os.getpid(), signal.SIGKILL)
