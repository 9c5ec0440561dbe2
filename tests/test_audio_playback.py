"""PyAudio playback into ALSA's ``file`` PCM: the bytes the earphone would get.

Each scenario runs in a subprocess whose HOME holds an ``.asoundrc`` that
makes ALSA's default device write raw samples to a file (its ``null`` slave
needs no sound card), so the real PyAudio/PortAudio/ALSA path is exercised.
"""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from audio import CLIPS_DIR
from audio.playback import Feed
from audio.sound import with_volume
from audio.wavfile import read_wav

ROOT = Path(__file__).resolve().parents[1]
pytest.importorskip("pyaudio")

PRELUDE = """
import logging, sys, time
logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(levelname)s %(message)s")
from audio.playback import AudioUnavailable, PyAudioPlayer, find_output_device, list_output_devices
from audio.voice import VoicePack
voice = VoicePack("speech", "en")
"""


def asoundrc(home: Path, target: str) -> None:
    (home / ".asoundrc").write_text(
        f'pcm.!default {{\n  type file\n  slave.pcm "null"\n  file "{target}"\n  format "raw"\n}}\n')


def run_scenario(home: Path, script: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ALSA_", "XDG_CONFIG"))}
    env.update(HOME=str(home), PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-c", PRELUDE + textwrap.dedent(script)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def clip(label: str) -> np.ndarray:
    return read_wav(CLIPS_DIR / "en" / f"{label}.wav").pcm


def positions(raw: np.ndarray, samples: np.ndarray) -> list[int]:
    """Where ``samples`` occur, contiguous and exact, in ``raw``."""
    starts = np.flatnonzero(raw[: len(raw) - len(samples) + 1] == samples[0])
    return [int(k) for k in starts if np.array_equal(raw[k:k + len(samples)], samples)]


@pytest.fixture()
def home(tmp_path):
    asoundrc(tmp_path, str(tmp_path / "out.raw"))
    return tmp_path


def test_the_exact_samples_reach_the_device_with_volume_and_mute(home):
    out = run_scenario(home, """
        from audio.player import Player
        p = PyAudioPlayer(volume=1.0)
        assert isinstance(p, Player)
        p.play(voice.sound("happy")); assert p.wait(5)
        p.set_volume(0.5)
        p.play(voice.sound("sad")); assert p.wait(5)
        p.set_muted(True)
        p.play(voice.sound("fear")); assert p.wait(5)  # dropped
        p.play(voice.sound("muted"), force=True); assert p.wait(5)
        start = time.monotonic(); p.close(); print("close took", time.monotonic() - start)
        p.play(voice.sound("angry"))  # after close: ignored
    """)
    raw = np.fromfile(home / "out.raw", "<i2")
    happy = positions(raw, clip("happy"))
    sad = positions(raw, with_volume(clip("sad"), 0.5))
    muted = positions(raw, with_volume(clip("muted"), 0.5))
    assert len(happy) == len(sad) == len(muted) == 1, (happy, sad, muted)
    assert happy[0] < sad[0] < muted[0]
    assert not positions(raw, with_volume(clip("fear"), 0.5))
    assert not positions(raw, clip("angry"))
    assert float(out.split("close took ")[1].split()[0]) < 0.5
    assert "audio output 0: default at 16000 Hz" in out


def test_the_child_process_player_delivers_the_same_samples(home):
    """The daemon's player: the same samples, volume and mute, played by a child process."""
    out = run_scenario(home, """
        from audio.player import Player
        from audio.remote import ChildPlayer
        p = ChildPlayer()
        assert isinstance(p, Player)
        for label, volume, muted, force in (("happy", 1.0, False, False), ("sad", 0.5, False, False),
                                            ("fear", 0.5, True, False), ("muted", 0.5, True, True)):
            p.set_volume(volume)
            p.set_muted(muted)
            sound = voice.sound(label)
            p.play(sound, force=force); assert p.wait(20)
            time.sleep(sound.duration + 0.3)  # heard before the next one cuts it off
        start = time.monotonic(); p.close(); print("close took", time.monotonic() - start)
    """)
    raw = np.fromfile(home / "out.raw", "<i2")
    happy, sad = positions(raw, clip("happy")), positions(raw, with_volume(clip("sad"), 0.5))
    muted = positions(raw, with_volume(clip("muted"), 0.5))
    assert len(happy) == len(sad) == len(muted) == 1, (happy, sad, muted)
    assert happy[0] < sad[0] < muted[0] and not positions(raw, with_volume(clip("fear"), 0.5))
    assert float(out.split("close took ")[1].split()[0]) < 1.0
    assert "audio output 0: default at 16000 Hz" in out


def test_a_stream_error_is_logged_once_and_the_output_reopened(home):
    good = (home / ".asoundrc").read_text()
    asoundrc(home, "/dev/full")  # ALSA's writes fail: the stream dies mid-sound
    out = run_scenario(home, f"""
        p = PyAudioPlayer()
        p.play(voice.sound("happy")); assert p.wait(5)
        open({str(home / ".asoundrc")!r}, "w").write({good!r})  # the device is back
        p.play(voice.sound("sad")); assert p.wait(5)
        p.close()
        print("survived")
    """)
    assert out.count("ERROR audio output failed (stream stopped while playing)") == 1, out
    assert "audio output back" in out and "survived" in out
    raw = np.fromfile(home / "out.raw", "<i2")
    assert len(positions(raw, clip("sad"))) == 1


def test_a_missing_device_is_a_clear_error_or_retried_without_crashing(home):
    out = run_scenario(home, """
        try:
            PyAudioPlayer(device="no-such-card")
        except AudioUnavailable as exc:
            print("refused:", exc)
        p = PyAudioPlayer(device="no-such-card", open_now=False)
        for _ in range(3):
            p.play(voice.sound("happy"))
        start = time.monotonic(); p.close(); print("close took", time.monotonic() - start)
        print("devices", list_output_devices())
    """)
    assert "refused: no audio output matching 'no-such-card'; outputs: 0: default" in out
    assert out.count("ERROR audio output failed") == 1, out
    assert "devices [(0, 'default')]" in out
    assert float(out.split("close took ")[1].split()[0]) < 0.5


def test_devices_are_found_by_index_or_name_part(home):
    out = run_scenario(home, """
        import pyaudio
        pa = pyaudio.PyAudio()
        print("found", find_output_device(pa, ""), find_output_device(pa, "0"),
              find_output_device(pa, "DEF"), find_output_device(pa, 0))
        try:
            find_output_device(pa, "7")
        except AudioUnavailable as exc:
            print("refused:", exc)
        pa.terminate()
    """)
    assert "found 0 0 0 0" in out
    assert "refused: no audio output with index 7; outputs: 0: default" in out


def test_feed_cuts_off_the_sound_playing_at_the_next_buffer():
    feed = Feed()
    first, second = np.arange(1, 1001, dtype=np.int16), np.full(500, -7, np.int16)
    assert feed.start(first)  # nothing was playing: the stream must be started
    data, last = feed.read(320)
    assert np.frombuffer(data, "<i2").tolist() == list(range(1, 321)) and not last
    assert not feed.start(second)  # playing: the callback just continues with the new sound
    data, last = feed.read(320)
    assert (np.frombuffer(data, "<i2") == -7).all() and not last
    data, last = feed.read(320)
    chunk = np.frombuffer(data, "<i2")
    assert (chunk[:180] == -7).all() and not chunk[180:].any() and last  # zero-padded end
    assert feed.done and feed.start(first)  # finished: needs a restart
