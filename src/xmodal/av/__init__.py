"""Audio and video as segments with time ranges (issue 14, parts 2 and 3).

A sound or video file becomes a parent item and segment items (``parent`` and a ``span`` of start/end
seconds). The pieces, each a small module with one job, dependencies pointing down:

- :mod:`.probe`: what a file holds (``ffprobe``), refused early when empty, undecodable, of an unsupported
  codec or longer than the configured limit;
- :mod:`.decode`: PCM samples (``ffmpeg``), truncation found, and key frames as JPEG;
- :mod:`.windows`: fixed windows with overlap, and a transcript's words per window;
- :mod:`.speech`: offline speech-to-text (Whisper tiny.en through ``faster-whisper``) and word error rate;
- :mod:`.fingerprint`: Chromaprint fingerprints (``fpcalc -raw``) and their bit agreement;
- :mod:`.shots`: video shots (PySceneDetect's ContentDetector) or fixed windows;
- :mod:`.split`: a file → its parent item and segment items;
- :mod:`.loaders`: the ``audio`` and ``video`` media loaders (the file kept in the index's media store).

Nothing here is imported by ``import xmodal``; the binaries come from Debian (``ffmpeg``,
``libchromaprint-tools``) and the Python parts from the ``media`` extra.
"""

from .dedup import register as _register_fingerprinters

_register_fingerprinters()
