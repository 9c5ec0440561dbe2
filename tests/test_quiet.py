"""Native chatter on fd 2 goes to the debug log, so stderr keeps facecue's own lines."""
from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from core.quiet import native_stderr_to_debug

ROOT = Path(__file__).resolve().parents[1]


def test_what_native_code_writes_to_fd_2_is_logged_at_debug(capfd, caplog):
    caplog.set_level(logging.DEBUG, logger="facecue")
    with native_stderr_to_debug("lib"):
        os.write(2, b"INFO: a banner\n\n")
    os.write(2, b"after\n")
    assert capfd.readouterr().err == "after\n"
    assert [r.getMessage() for r in caplog.records] == ["lib: INFO: a banner"]


def test_fd_2_comes_back_when_the_call_fails(capfd):
    try:
        with native_stderr_to_debug("lib"):
            raise RuntimeError("broken model")
    except RuntimeError:
        pass
    os.write(2, b"still here\n")
    assert capfd.readouterr().err == "still here\n"


def test_loading_a_model_prints_no_litert_banner(model_path):
    """A fresh process: LiteRT prints its XNNPACK banner once, at the first allocate."""
    script = textwrap.dedent(f"""
        from device.classify import Classifier
        Classifier({str(model_path)!r})
    """)
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
