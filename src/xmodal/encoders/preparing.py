"""What a user sees while a model is prepared once (exported to ONNX): xmodal's own message, nothing else.

The first use of the offline encoder exports its models (15–60 s). The user sees one message saying
so, with a progress bar of its stages on a terminal and one line per stage otherwise (a log file or a
pipe gets no carriage-return bars), on stderr. The libraries doing the work print their own progress
bars ("Loading weights") and warnings (onnxruntime's quantizer logs a pre-processing hint on the root
logger): they are silenced while the stages run, since none of them is something the user can act on.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import Any

#: a stage callback: ``stage("exporting to ONNX")`` starts the next stage
Stage = Callable[[str], None]


@contextlib.contextmanager
def quiet_third_party() -> Iterator[None]:
    """Silence other libraries' progress bars, warnings and root-logger messages in the block."""
    root = logging.getLogger()
    level = root.level
    saved = {name: os.environ.get(name) for name in ("HF_HUB_DISABLE_PROGRESS_BARS", "TQDM_DISABLE")}
    os.environ.update(HF_HUB_DISABLE_PROGRESS_BARS="1", TQDM_DISABLE="1")
    bars = _transformers_bars()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            root.setLevel(logging.ERROR)
            yield
    finally:
        root.setLevel(level)
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        if bars is not None:
            bars()


def _transformers_bars() -> Callable[[], None] | None:
    """Turn transformers' own progress bars off (they ignore the environment once imported); returns how to
    turn them back on, or None when transformers is not installed."""
    try:
        from transformers.utils import logging as hf_logging
    except ImportError:
        return None
    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    return hf_logging.enable_progress_bar if was_enabled else None


@contextlib.contextmanager
def preparing(what: str, stages: Sequence[str], stream: Any = None) -> Iterator[Stage]:
    """Announce the one-time preparation of ``what`` and its ``stages`` on ``stream`` (stderr): a bar on a
    terminal, a line per stage otherwise. Yields the callback that starts each next stage by name."""
    out = stream if stream is not None else sys.stderr
    title = f"xmodal: preparing models (one time): {what}"
    started = time.perf_counter()
    if _is_terminal(out):
        from tqdm import tqdm

        with tqdm(total=len(stages), desc=title, unit="stage", file=out, leave=False) as bar:
            seen: list[str] = []

            def step(name: str) -> None:
                if seen:
                    bar.update(1)
                seen.append(name)
                bar.set_postfix_str(name)

            with quiet_third_party():
                yield step
            bar.update(len(stages) - bar.n)
    else:

        def line(name: str) -> None:
            print(f"{title}: {name} …", file=out, flush=True)

        with quiet_third_party():
            yield line
    print(f"{title}: done in {time.perf_counter() - started:.1f} s", file=out, flush=True)


def _is_terminal(stream: Any) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty()) if callable(isatty) else False
