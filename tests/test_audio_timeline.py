"""The --audio-out timeline: every sample where the wearer would hear it."""
from __future__ import annotations

import numpy as np
import pytest

from audio.player import AudioUnavailable, Player
from audio.sound import Sound, with_volume
from audio.timeline import TimelineWriter
from audio.wavfile import read_wav

RATE = 16_000


def ramp(n: int, base: int) -> Sound:
    """Distinct, recognisable samples: base, base+1, ..."""
    return Sound((base + np.arange(n)).astype(np.int16))


def test_sounds_land_at_their_frame_times_with_silence_between(tmp_path):
    out = tmp_path / "heard.wav"
    w = TimelineWriter(out)
    assert isinstance(w, Player)
    a, b = ramp(800, 1000), ramp(400, 5000)
    w.play(a, 0.25)
    w.play(b, 1.0)
    assert not out.exists()  # nothing visible before close
    w.close()
    heard = read_wav(out)
    assert heard.sample_rate == RATE
    expected = np.zeros(16_400, np.int16)
    expected[4000:4800] = a.pcm
    expected[16_000:16_400] = b.pcm
    np.testing.assert_array_equal(heard.pcm, expected)
    assert [p.name for p in tmp_path.iterdir()] == ["heard.wav"]  # no temp file left


def test_a_later_sound_cuts_off_the_tail_of_the_earlier_one(tmp_path):
    out = tmp_path / "heard.wav"
    w = TimelineWriter(out)
    a, b = ramp(8000, 1000), ramp(100, 20_000)
    w.play(a, 0.0)
    w.play(b, 0.1)  # 1600 samples into a
    w.close()
    pcm = read_wav(out).pcm
    assert len(pcm) == 1700
    np.testing.assert_array_equal(pcm[:1600], a.pcm[:1600])
    np.testing.assert_array_equal(pcm[1600:], b.pcm)


def test_time_running_back_replaces_the_previous_sound_instead(tmp_path):
    out = tmp_path / "heard.wav"
    w = TimelineWriter(out)
    w.play(ramp(100, 1000), 0.5)
    w.play(ramp(50, 9000), 0.2)
    w.close()
    pcm = read_wav(out).pcm
    assert len(pcm) == 8050
    assert not pcm[:8000].any()
    np.testing.assert_array_equal(pcm[8000:], ramp(50, 9000).pcm)


def test_volume_and_mute_apply_and_force_overrides_mute(tmp_path):
    out = tmp_path / "heard.wav"
    w = TimelineWriter(out, volume=0.5)
    loud = Sound(np.full(160, 20_000, np.int16))
    w.play(loud, 0.0)
    w.set_muted(True)
    assert w.muted
    w.play(loud, 0.1)  # dropped: and it does not cut the one before
    w.set_volume(0.25)
    w.play(loud, 0.2, force=True)
    w.close()
    pcm = read_wav(out).pcm
    assert len(pcm) == 3200 + 160
    np.testing.assert_array_equal(pcm[:160], with_volume(loud.pcm, 0.5))
    assert (pcm[:160] == 10_000).all()
    assert not pcm[160:3200].any()
    assert (pcm[3200:] == 5000).all()


def test_close_pads_to_the_end_time_and_is_idempotent(tmp_path):
    out = tmp_path / "heard.wav"
    w = TimelineWriter(out)
    w.play(ramp(160, 1), 0.0)
    assert w.end == pytest.approx(0.01)
    w.close(end_t=2.0)
    w.close()
    w.play(ramp(160, 1), 3.0)  # after close: ignored, not an exception
    assert len(read_wav(out).pcm) == 32_000


def test_a_sound_longer_than_the_end_time_is_kept_whole(tmp_path):
    out = tmp_path / "heard.wav"
    w = TimelineWriter(out)
    w.play(ramp(3200, 1), 0.9)
    w.close(end_t=1.0)
    assert len(read_wav(out).pcm) == 14_400 + 3200


def test_other_sample_rates_are_resampled_to_the_timeline(tmp_path):
    out = tmp_path / "heard.wav"
    w = TimelineWriter(out)
    w.play(Sound(np.full(800, 1000, np.int16), 8000), 0.0)
    w.close()
    assert len(read_wav(out).pcm) == 1600


def test_an_unwritable_place_is_a_clear_error(tmp_path):
    with pytest.raises(AudioUnavailable, match="cannot write audio to .*missing"):
        TimelineWriter(tmp_path / "missing" / "x.wav")


def test_bad_volume_is_refused(tmp_path):
    with pytest.raises(ValueError, match="volume must be between 0 and 1, got 1.5"):
        TimelineWriter(tmp_path / "x.wav", volume=1.5)
    assert not any(tmp_path.iterdir())
