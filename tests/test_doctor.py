"""``facecue doctor`` as a helper runs it: a real process, the shipped model and
detector, PortAudio on an ALSA file device, and no GPIO unless gpiozero's
mock driver is asked for; the table's lines and the exit status are checked."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ROWS = ["model", "face detector", "camera", "audio", "voice", "gpio"]


def doctor(home: Path, config: str, gpio: str = "no-such-gpio-driver") -> tuple[int, dict[str, tuple[str, str]]]:
    """Exit status and {check: (status, detail)} of ``facecue doctor`` on ``config``.
    ALSA reads ``home``'s ``.asoundrc``; ``gpio`` names gpiozero's pin driver."""
    (home / "config.toml").write_text(config)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ALSA_", "XDG_CONFIG", "GPIOZERO_"))}
    env.update(HOME=str(home), GPIOZERO_PIN_FACTORY=gpio)
    proc = subprocess.run([sys.executable, "-m", "device.cli", "doctor", "--config", str(home / "config.toml")],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert proc.stderr == ""
    rows = {}
    for line in proc.stdout.splitlines():
        name, status, detail = re.fullmatch(r"(\S+(?: \S+)?)\s{2,}(ok|warn|FAIL)\s+(.*)", line).groups()
        rows[name] = (status, detail)
    assert list(rows) == ROWS, proc.stdout
    return proc.returncode, rows


@pytest.fixture()
def home(tmp_path: Path) -> Path:
    """A HOME whose ALSA default output is a file, so PortAudio really starts without a sound card."""
    pytest.importorskip("pyaudio")
    (tmp_path / ".asoundrc").write_text(
        f'pcm.!default {{\n  type file\n  slave.pcm "null"\n  file "{tmp_path / "out.raw"}"\n'
        '  format "raw"\n}\n')
    return tmp_path


def assert_model_detector_and_voice_ok(rows: dict[str, tuple[str, str]]) -> None:
    status, detail = rows["model"]
    assert status == "ok" and re.fullmatch(r"\S+\.tflite version \S+, sha256 verified.*", detail), detail
    assert rows["face detector"] == ("ok", "yunet, full search at scale 1.0")
    assert rows["voice"] == ("ok", "speech, language en, 15 sounds")


def test_on_this_machine_as_it_is(home):
    """Defaults: whatever camera this machine has (none on a build server) decides the exit status."""
    code, rows = doctor(home, "")
    assert_model_detector_and_voice_ok(rows)
    assert rows["audio"] == ("ok", "default output is 0: default; 1 output: 0: default")
    assert rows["gpio"] == ("warn", "no GPIO (BadPinFactory); pins configured: none")  # no pins: not needed
    camera_status, camera_detail = rows["camera"]
    if camera_status == "FAIL":
        assert camera_detail.startswith("no camera found; tried: "), camera_detail
    assert code == (1 if camera_status == "FAIL" else 0)


def test_everything_working_exits_0(home):
    from tools.data.face_video import Segment, write_video

    video = home / "nobody.avi"
    write_video(video, [Segment(None, 1.0)], fps=15)
    code, rows = doctor(home, f'[camera]\nsource = "{video}"\n[buttons]\nrepeat_pin = "GPIO17"\n', gpio="mock")
    assert_model_detector_and_voice_ok(rows)
    status, detail = rows["camera"]
    assert status == "ok" and re.fullmatch(rf"{re.escape(str(video))} 640x480, first frame in \d+\.\d\ds", detail)
    assert rows["gpio"] == ("ok", "MockFactory; pins configured: ['GPIO17']")
    assert code == 0


def test_a_missing_camera_earphone_and_gpio_each_fail_on_their_own_line(home):
    code, rows = doctor(home, '[camera]\nsource = "/dev/video77"\n[audio]\ndevice = "usb earphone"\n'
                              '[buttons]\nrepeat_pin = "GPIO17"\n')
    assert rows["camera"] == ("FAIL", "camera /dev/video77 cannot be opened")
    assert rows["audio"] == ("FAIL", "[audio] device 'usb earphone': no audio output matching 'usb earphone'; "
                                     "outputs: 0: default")
    assert rows["gpio"] == ("FAIL", "no GPIO (BadPinFactory); pins configured: ['GPIO17']")  # pins need GPIO
    assert_model_detector_and_voice_ok(rows)  # one broken part hides nothing else
    assert code == 1
