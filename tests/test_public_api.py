"""The public surface is deliberate: this test changes only when the API does."""

from __future__ import annotations

import xmodal


def test_all_is_explicit() -> None:
    assert sorted(xmodal.__all__) == sorted(
        [
            "AccessDenied",
            "AddReport",
            "AsyncClient",
            "Client",
            "ConfigError",
            "ConnectionFailed",
            "Engine",
            "Hits",
            "ImageError",
            "Item",
            "MissingDependency",
            "Modality",
            "NotFoundError",
            "Query",
            "Rejection",
            "RemoteError",
            "SearchResult",
            "Span",
            "StorageError",
            "Target",
            "ValidationError",
            "VectorKind",
            "XmodalError",
            "__version__",
            "open",
        ]
    )
    for name in xmodal.__all__:
        assert hasattr(xmodal, name), name


def test_import_does_not_load_heavy_dependencies() -> None:
    import subprocess
    import sys

    code = "import sys, xmodal; print(' '.join(m for m in ('torch', 'faiss', 'onnxruntime') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == ""
