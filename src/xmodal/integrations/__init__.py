"""Adapters for the frameworks users already work in, each an extra that ``import xmodal`` never needs.

* :mod:`xmodal.integrations.langchain`: a LangChain ``VectorStore`` (``pip install 'xmodal[langchain]'``).
* :mod:`xmodal.integrations.llamaindex`: a LlamaIndex ``BasePydanticVectorStore``
  (``pip install 'xmodal[llamaindex]'``).

Both keep documents the same way (:mod:`.documents`) and translate their frameworks' filters into xmodal's
filter language in one place (:mod:`.filters`), so an index written through one reads through the other.
"""
