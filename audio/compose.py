"""Status sentences in the wearer's language, built as clip keys.

A long button hold reports the model version and the camera state. The
sentence is built directly from language-neutral clip keys (``model``,
``version``, ``1``, ``point``, ``2``, ``,``, ``camera``, ``ok``), never as
English text parsed back into keys: every word then has a clip by
construction. The keys are played from the committed clips when espeak-ng
is not there, or worded in the wearer's language for espeak-ng.
"""
from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from audio.phrases import CLIP_KEYS, PHRASES
from audio.sound import Sound, silence

PAUSE = ","  # a key of its own: a longer gap, a comma for espeak-ng
WORD_GAP = 0.06  # seconds between composed words: separate, but still one sentence
SENTENCE_GAP = 0.25  # at a pause

_VERSION = re.compile(r"\d+(?:\.\d+)*")


def version_keys(version: str) -> list[str]:
    """``"1.2"`` as ``1 point 2``: the first dotted number of ``version``, digit
    by digit; a suffix such as ``-provisional`` has no clip and is not said."""
    match = _VERSION.search(version)
    if match is None:
        return []
    keys: list[str] = []
    for i, part in enumerate(match.group().split(".")):
        keys.extend((["point"] if i else []) + list(part))
    return keys


def status_keys(model_version: str | None, camera_ok: bool) -> list[str]:
    """What a long hold says: ``model version 1 point 2, camera ok`` (or
    ``no model``, ``camera not working``)."""
    model = ["model", "version", *version_keys(model_version)] if model_version is not None else ["no", "model"]
    return [*model, PAUSE, "camera", "ok" if camera_ok else "not_working"]


def check_keys(keys: Sequence[str]) -> None:
    """ValueError naming the first key that has no clip (a caller's bug, found at once)."""
    for key in keys:
        if key != PAUSE and key not in CLIP_KEYS:
            raise ValueError(f"no clip for {key!r} in {list(keys)}")


def compose(keys: Sequence[str], clips: dict[str, Sound]) -> Sound:
    """``keys`` said with ``clips``: words a short gap apart, a longer one at a pause."""
    check_keys(keys)
    words = [k for k in keys if k != PAUSE]
    if not words:
        raise ValueError("nothing to say: no words among the keys")
    rate = clips[words[0]].sample_rate
    parts: list[np.ndarray] = []
    gap = WORD_GAP
    for key in keys:
        if key == PAUSE:
            gap = SENTENCE_GAP
            continue
        if parts:
            parts.append(silence(gap, rate).pcm)
        parts.append(clips[key].pcm)
        gap = WORD_GAP
    return Sound(np.concatenate(parts), rate)


def wording(keys: Sequence[str], language: str) -> str:
    """``keys`` as a sentence in ``language`` through the phrase table, for espeak-ng."""
    check_keys(keys)
    words = [PHRASES[language][key] if key != PAUSE else PAUSE for key in keys]
    return " ".join(words).replace(f" {PAUSE}", PAUSE)
