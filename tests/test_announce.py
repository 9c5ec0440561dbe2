"""What the log says the wearer heard: the Announcer on a real voice pack and timeline player."""
from __future__ import annotations

import logging

import numpy as np

from audio.compose import compose
from audio.timeline import TimelineWriter
from audio.voice import VoicePack
from audio.wavfile import read_wav
from core.frames import Expression, FaceChange, FaceCue
from device.announce import Announcer, Notice


def announce_lines(tmp_path, caplog, muted: bool) -> list[str]:
    caplog.set_level(logging.INFO, logger="facecue")
    player = TimelineWriter(tmp_path / "heard.wav", muted=muted)
    announcer = Announcer(VoicePack("speech", "en"), player)
    announcer.announce(FaceCue(FaceChange.ARRIVED, 0.5))
    announcer.announce(Expression("happy", 0.91, 1.0))
    announcer.announce(Expression("sad", 0.52, 1.5, hedged=True))
    player.close(end_t=2.0)
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith(("announce", "earcon", "hedge"))]


def test_muted_announcements_are_logged_as_muted(tmp_path, caplog):
    assert announce_lines(tmp_path, caplog, muted=True) == [
        "earcon face t 0.50s (muted)", "announce happy confidence 0.91 t 1.00s (muted)",
        "hedge sad confidence 0.52 t 1.50s (muted)"]


def test_heard_announcements_carry_no_mark(tmp_path, caplog):
    assert announce_lines(tmp_path, caplog, muted=False) == [
        "earcon face t 0.50s", "announce happy confidence 0.91 t 1.00s", "hedge sad confidence 0.52 t 1.50s"]


def test_an_event_is_said_once_until_it_recovers_and_lands_at_its_frame_time(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="facecue")
    player = TimelineWriter(tmp_path / "heard.wav")
    announcer = Announcer(VoicePack("speech", "en"), player)
    announcer.event(Notice.CAMERA_ERROR, 1.0)
    announcer.event(Notice.CAMERA_ERROR, 2.0)  # the same outage: not again
    announcer.recovered(Notice.CAMERA_ERROR)
    announcer.event(Notice.CAMERA_ERROR, 3.0)
    announcer.event(Notice.MODEL_UPDATED, 4.0)
    announcer.event(Notice.MODEL_UPDATED, 5.0)  # each update is news
    announcer.close(end_t=6.0)
    assert [r.getMessage() for r in caplog.records] == [
        "event camera_error t 1.00s", "event camera_error t 3.00s", "event model_updated t 4.00s",
        "event model_updated t 5.00s"]


def test_the_status_is_said_from_clip_keys_even_while_muted(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="facecue")
    voice = VoicePack("speech", "id", espeak="/nonexistent/espeak-ng")  # composed from the clips
    announcer = Announcer(voice, TimelineWriter(tmp_path / "heard.wav", muted=True))
    announcer.status("1.2", camera_ok=False, t=1.0)
    announcer.status(None, camera_ok=True, t=5.0)
    announcer.close(end_t=8.0)
    assert [r.getMessage() for r in caplog.records if r.getMessage().startswith("button")] == [
        "button status: model version 1.2, camera not working", "button status: no model, camera ok"]
    heard = read_wav(tmp_path / "heard.wav")
    first = compose(["model", "version", "1", "point", "2", ",", "camera", "not_working"], voice.clips).pcm
    second = compose(["no", "model", ",", "camera", "ok"], voice.clips).pcm
    rate = heard.sample_rate
    assert np.array_equal(heard.pcm[rate:rate + len(first)], first)
    assert np.array_equal(heard.pcm[5 * rate:5 * rate + len(second)], second)
    assert len(heard.pcm) == 8 * rate
