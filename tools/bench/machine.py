"""What machine a benchmark ran on: CPU, board, cores, load, Python and runtime versions.

A ms/prediction figure means nothing without the box it came from; the
load average is recorded too, because a number taken beside a training job
is not the number the same box gives when idle.
"""
from __future__ import annotations

import os
import platform
from importlib import metadata
from pathlib import Path
from typing import Any

from tools.train.runs import describe_machine


def board_model(path: Path = Path("/proc/device-tree/model")) -> str | None:
    """The board's name on Arm boards (e.g. "Raspberry Pi 4 Model B"), None elsewhere."""
    try:
        return path.read_text(errors="replace").strip("\0\n ") or None
    except OSError:
        return None


def package_version(*names: str) -> str:
    """Installed version of the first of ``names`` present, or "absent"."""
    for name in names:
        try:
            return f"{name} {metadata.version(name)}"
        except metadata.PackageNotFoundError:
            continue
    return "absent"


def machine_info() -> dict[str, Any]:
    """One flat record for the report header and the JSON."""
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    return {
        "cpu": describe_machine(),
        "board": board_model(),
        "cores": os.cpu_count() or 1,
        "machine": platform.machine(),
        "os": platform.platform(terse=True),
        "python": platform.python_version(),
        "litert": package_version("ai-edge-litert", "tflite-runtime"),
        "opencv": package_version("opencv-python-headless", "opencv-python", "opencv-contrib-python"),
        "numpy": package_version("numpy"),
        "tensorflow": package_version("tensorflow-cpu", "tensorflow"),
        "load_average": [round(x, 2) for x in load],
    }
