"""What the log says the wearer heard: the Announcer on a real voice pack and timeline player."""
from __future__ import annotations

import logging

from audio.timeline import TimelineWriter
from audio.voice import VoicePack
from device.announce import Announcer
from device.frames import Announcement


def announce_lines(tmp_path, caplog, muted: bool) -> list[str]:
    caplog.set_level(logging.INFO, logger="facecue")
    player = TimelineWriter(tmp_path / "heard.wav", muted=muted)
    announcer = Announcer(VoicePack("speech", "en"), player)
    announcer.announce(Announcement("face", 1.0, 0.5))
    announcer.announce(Announcement("happy", 0.91, 1.0))
    player.close(end_t=2.0)
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith(("announce", "earcon"))]


def test_muted_announcements_are_logged_as_muted(tmp_path, caplog):
    assert announce_lines(tmp_path, caplog, muted=True) == [
        "earcon face t 0.50s (muted)", "announce happy confidence 0.91 t 1.00s (muted)"]


def test_heard_announcements_carry_no_mark(tmp_path, caplog):
    assert announce_lines(tmp_path, caplog, muted=False) == [
        "earcon face t 0.50s", "announce happy confidence 0.91 t 1.00s"]
