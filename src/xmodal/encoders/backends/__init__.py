"""Real model backends, each registered by name in the encoder registry (:mod:`xmodal.encoders`).

=====================  =================================================================  ================
name                   model                                                              extra
=====================  =================================================================  ================
``http-embeddings``    an OpenAI-compatible ``/v1/embeddings`` server (vLLM, TEI, Ollama)  ``http``
``sentence-transformers``  a local SentenceTransformer directory (text, or CLIP for images)  ``st``
``hf``                 a ``transformers`` CLIP/SigLIP (text and image feature methods)     ``hf``
``open_clip``          an OpenCLIP/SigLIP architecture + pretrained tag or checkpoint     ``openclip``
``bedrock-nova``       Amazon Nova Multimodal Embeddings on Bedrock (``invoke_model``)     ``bedrock``
=====================  =================================================================  ================

Each is chosen in the index settings (``xmodal --index DIR init --encoder NAME --encoder-option k=v``); its
:meth:`config` keeps what makes the vectors (model, dimensions, prefixes), never a key or credential.
"""
