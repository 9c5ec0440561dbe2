"""tools/emulate.sh: the emulated-install check is not run here (it takes many minutes
and root); this keeps its misuse to one line (its syntax and shellcheck are checked
beside install.sh's, in test_install)."""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "tools" / "emulate.sh"


@pytest.mark.parametrize("args", [[], ["raspberry"]])
def test_an_unknown_target_is_one_usage_line(args: list[str]) -> None:
    result = subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, timeout=30)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.strip().splitlines() == ["usage: tools/emulate.sh pi|deeplens"]
