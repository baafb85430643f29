"""Provenance (issue 17, part 5): invisible watermarks (:mod:`.watermark`, RivaGAN as ONNX) and C2PA manifests
(:mod:`.manifests`) read at ingest (:mod:`.guard`), and both put on the images the service exports
(:mod:`.export`). Not to be confused with :mod:`xmodal.provenance`, which says which retrieval strategies
found a hit."""
