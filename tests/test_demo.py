"""The README's demo: a fresh clone, no data and no camera, hears the device say a word."""
import os
import re
import shlex
import subprocess
import sys
import time
import wave
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CLIP = ROOT / "demo" / "astronaut.mp4"


def readme_demo_command() -> str:
    """The one README line that runs the device on the shipped clip."""
    lines = [line for line in (ROOT / "README.md").read_text().splitlines() if "demo/astronaut.mp4" in line
             and "facecue run" in line]
    assert len(lines) == 1, lines
    return lines[0].strip()


def test_the_clip_is_small_and_named_with_its_sources():
    assert CLIP.stat().st_size < 300 * 1024
    sources = (ROOT / "demo" / "README.md").read_text()
    assert "astronaut()" in sources and "public domain" in sources
    assert "coffee()" in sources and "CC0" in sources


def test_the_readme_demo_says_happy_within_ten_seconds(tmp_path):
    """The command as the README writes it, run in an empty folder beside the clip; only
    ``.venv/bin/facecue`` becomes this interpreter's ``-m device.cli``."""
    command = readme_demo_command()
    assert command.startswith("mkdir -p out && .venv/bin/facecue run ")
    (tmp_path / "demo").symlink_to(ROOT / "demo")
    command = command.replace(".venv/bin/facecue", f"{shlex.quote(sys.executable)} -m device.cli")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    started = time.monotonic()
    result = subprocess.run(["bash", "-c", command], cwd=tmp_path, capture_output=True, text=True, timeout=60,
                            env=env)
    took = time.monotonic() - started
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stderr == ""
    assert re.findall(r"INFO announce (\w+) confidence", result.stdout) == ["happy"]
    assert took < 10
    with wave.open(str(tmp_path / "out" / "demo.wav")) as wav:
        heard = wav.getnframes() / wav.getframerate()
    assert heard >= 4.0  # the clip's own timeline: the word at about 2 s, the clip 5 s long


def test_demo_clip_remakes_a_clip_that_says_the_same(tmp_path):
    """The clip can be remade from its sources alone, and the remade one says the same."""
    pytest.importorskip("skimage")
    from tools.data.demo_clip import main

    out = tmp_path / "clip.mp4"
    assert main(["--out", str(out)]) == 0
    assert out.stat().st_size < 300 * 1024
    (tmp_path / "empty.toml").write_text("")
    result = subprocess.run([sys.executable, "-m", "device.cli", "run", "--config", str(tmp_path / "empty.toml"),
                             "--source", str(out), "--audio-out", str(tmp_path / "a.wav")],
                            cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert re.findall(r"INFO announce (\w+) confidence", result.stdout) == ["happy"]
