"""The seven expressions the model tells apart, in the order of its outputs.

The one list that the model's metadata, the config's ``[decide] ignore``, the
voice packs and the training data are checked against; it lives in the core so
that none of them has to import another's package to agree on it.
"""
from __future__ import annotations

EXPRESSIONS = ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise")
