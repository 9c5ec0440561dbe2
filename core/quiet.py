"""Keep stderr for facecue's own lines.

Native libraries write straight to file descriptor 2, out of reach of
Python's ``sys.stderr``: LiteRT prints "INFO: Created TensorFlow Lite XNNPACK
delegate for CPU." when a model is first loaded, and PortAudio's JACK host
API prints "jack server is not running" on every start where there is no JACK.
A wearer's helper reading ``facecue doctor`` or the journal should see
neither, yet a developer chasing a sound card problem may need them: so they
go to the debug log instead of being thrown away.
"""
from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
import threading
from collections.abc import Iterator

log = logging.getLogger("facecue")

# fd 2 is process-wide: two threads diverting it at once (the model loader and
# an audio reopen) would restore each other's sink and lose stderr for good.
_lock = threading.Lock()


@contextlib.contextmanager
def native_stderr_to_debug(what: str) -> Iterator[None]:
    """Divert fd 2 to a temporary file around a short native call, then log
    each line it wrote at DEBUG as ``WHAT: line``.

    Only for short calls: whatever another thread writes to stderr meanwhile
    lands in the debug log too. With fd 2 closed (nothing to protect) the call
    runs as is.
    """
    with _lock:
        sys.stderr.flush()
        try:
            saved = os.dup(2)
        except OSError:
            yield
            return
        with tempfile.TemporaryFile() as sink:
            os.dup2(sink.fileno(), 2)
            try:
                yield
            finally:
                sys.stderr.flush()
                os.dup2(saved, 2)
                os.close(saved)
                sink.seek(0)
                for line in sink.read().decode(errors="replace").splitlines():
                    if line.strip():
                        log.debug("%s: %s", what, line.rstrip())
