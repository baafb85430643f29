"""Generative retrieval in the GENIUS style (Kim et al., "GENIUS: A Generative Framework for Universal
Multimodal Search", CVPR 2025): semantic IDs by residual quantization with the modality as first code,
a small transformer decoder that generates IDs from the query embedding, trie-constrained beam search,
query augmentation, and re-ranking of the generated candidates by embedding similarity (GENIUS-R).

Needs PyTorch and safetensors (``pip install 'xmodal[genret]'``); importing :mod:`xmodal` never
imports this package. The search modes ``generative`` and ``generative-rerank`` load it on first use.
"""
