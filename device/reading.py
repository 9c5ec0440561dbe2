"""Reading small files and JSON that a careless or hostile hand may have made.

A config, a key, a model's metadata or sync's state is read whole into memory
and parsed: ``/dev/zero`` would never end, a named pipe with no writer would
hang the reader, and JSON nested a few hundred levels deep overflows the
parser (or, worse, code that walks the result later). So each is read only
from a regular file, up to a size cap, and its nesting is bounded before it
is parsed. Standard library only: the config, the store and sync all take it.
"""
from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path
from typing import Any

MAX_JSON_DEPTH = 32  # a model's metadata or a manifest is 6 deep; a real file never comes close
_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")


class Refused(ValueError):
    """A file or document that is not read; the message is one line naming why."""


def read_regular(path: Path, limit: int) -> bytes:
    """The bytes of ``path`` if it is (or links to) a regular file of at most ``limit``
    bytes; Refused otherwise. OSError (FileNotFoundError included) passes through.

    Opened non-blocking, so a named pipe is refused instead of waiting for a writer.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise Refused(f"{path} is not a regular file")
        chunks, size = [], 0
        while size <= limit:
            chunk = os.read(fd, min(1 << 20, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    finally:
        os.close(fd)
    if size > limit:
        raise Refused(f"{path} is larger than {limit} bytes")
    return b"".join(chunks)


def json_depth(text: str) -> int:
    """How deep arrays and objects nest in ``text``, counted without parsing it."""
    depth = deepest = 0
    for bracket in _NOT_BRACKET.sub("", _JSON_STRING.sub("", text)):
        depth += 1 if bracket in "[{" else -1
        deepest = max(deepest, depth)
    return deepest


def loads_json(raw: bytes | str, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """``json.loads`` of a document nested at most ``max_depth`` deep; Refused for a
    deeper one, ValueError (as json's) for one that is not JSON."""
    text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
    depth = json_depth(text)
    if depth > max_depth:
        raise Refused(f"nested {depth} levels deep, more than {max_depth}")
    return json.loads(text)
