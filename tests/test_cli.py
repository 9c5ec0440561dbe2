import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from device import config

ROOT = Path(__file__).resolve().parents[1]


def facecue(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "device.cli", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)


@pytest.mark.parametrize("command, option", [("eval", "--data"), ("sync", "--rollback"), ("bench", "--soak")])
def test_delegated_subcommands_get_their_own_options(command, option):
    result = facecue(command, "--help")
    assert result.returncode == 0, result.stderr
    assert option in result.stdout


def test_print_default_is_the_validated_default():
    result = facecue("config", "--print-default")
    assert config.from_dict(tomllib.loads(result.stdout)) == config.Config()


def test_say_writes_the_clip(tmp_path):
    out = tmp_path / "happy.wav"
    result = facecue("say", "happy", "--audio-out", str(out))
    assert result.returncode == 0, result.stderr
    assert out.stat().st_size > 10_000


def test_say_unknown_label_is_one_line():
    result = facecue("say", "joy")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith("facecue: error: unknown label 'joy'")
