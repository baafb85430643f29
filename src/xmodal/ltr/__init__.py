"""Learning to rank and retrieve: strategies, fusion, a contextual bandit over strategies, a ranker.

The pieces meet in :mod:`xmodal.ltr.pipeline`; the search modes live in :mod:`xmodal.ltr.mode`.
"""
