"""Counts in words: "1 frame", "2 frames". Log lines and reports are read by people,
and "1 threads" or "thread(s)" reads as a slip."""
from __future__ import annotations


def count(n: int, noun: str) -> str:
    """``n`` and ``noun``, with an ``s`` unless ``n`` is one."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"
