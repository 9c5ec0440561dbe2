"""Status sentences in the wearer's language, from clips or for espeak-ng.

The daemon's status text ("model version 1.2, camera ok") is English; it is
mapped onto language-neutral clip keys (``model``, ``version``, ``1``,
``point``, ``2``, ``camera``, ``ok``), which are then played in the
wearer's language from the committed clips when espeak-ng is not there,
or re-worded in that language for espeak-ng. Words with no clip are left
out rather than guessed.
"""
from __future__ import annotations

import logging
import re
from collections.abc import Mapping

import numpy as np

from audio.phrases import CLIP_KEYS, PHRASES
from audio.sound import Sound, silence

log = logging.getLogger(__name__)

WORD_GAP = 0.06  # seconds between composed words: separate, but still one sentence
SENTENCE_GAP = 0.25  # at a comma or full stop


def _phrase_keys() -> dict[tuple[str, ...], str]:
    """English wording -> clip key: the keys themselves ("not_working" as
    "not working") and the English phrase table ("okay", "camera problem")."""
    table = {tuple(key.split("_")): key for key in CLIP_KEYS}
    table.update({tuple(PHRASES["en"][key].split()): key for key in CLIP_KEYS})
    return table


_PHRASE_KEYS = _phrase_keys()
_LONGEST = max(len(p) for p in _PHRASE_KEYS)

_TOKEN = re.compile(r"\d+(?:\.\d+)*|[a-z]+|[,.;:]")


def _tokens(text: str) -> list[str]:
    """Words, single digits with "point" between number parts, and pauses (",")."""
    out: list[str] = []
    for tok in _TOKEN.findall(text.lower()):
        if tok[0].isdigit():
            for i, part in enumerate(tok.split(".")):
                out.extend((["point"] if i else []) + list(part))
        else:
            out.append("," if tok in ",.;:" else tok)
    return out


def text_to_keys(text: str) -> list[str]:
    """Clip keys for ``text``; ``","`` marks a pause. Unknown words are dropped."""
    tokens, keys, i = _tokens(text), [], 0
    while i < len(tokens):
        if tokens[i] == ",":
            if keys and keys[-1] != ",":
                keys.append(",")
            i += 1
            continue
        for n in range(min(_LONGEST, len(tokens) - i), 0, -1):
            key = _PHRASE_KEYS.get(tuple(tokens[i:i + n]))
            if key is not None:
                keys.append(key)
                i += n
                break
        else:
            log.debug("no clip for %r in %r", tokens[i], text)
            i += 1
    while keys and keys[-1] == ",":
        keys.pop()
    return keys


def compose(text: str, clips: Mapping[str, Sound]) -> Sound | None:
    """``text`` said with ``clips``, or None when none of its words has a clip."""
    parts: list[np.ndarray] = []
    gap = WORD_GAP
    rate = None
    for key in text_to_keys(text):
        if key == ",":
            gap = SENTENCE_GAP
            continue
        clip = clips[key]
        rate = clip.sample_rate
        if parts:
            parts.append(silence(gap, rate).pcm)
        parts.append(clip.pcm)
        gap = WORD_GAP
    return Sound(np.concatenate(parts), rate) if parts else None


def localize(text: str, language: str) -> str:
    """``text`` re-worded in ``language`` through the phrase table, for espeak-ng.
    English passes through as it is; elsewhere words with no entry are dropped."""
    if language == "en":
        return text
    words = [PHRASES[language][key] if key != "," else "," for key in text_to_keys(text)]
    return " ".join(words).replace(" ,", ",")
