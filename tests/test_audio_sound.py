"""The Sound type, WAV files and the signal steps shared by clips and speech."""
from __future__ import annotations

import numpy as np
import pytest

from audio.dsp import PEAK_LIMIT, TARGET_ACTIVE_DB, active_level_db, normalize_loudness, resample, trim_silence
from audio.sound import Sound, join, silence, to_int16, with_volume
from audio.wavfile import read_wav, write_wav


def tone(freq: float, seconds: float, amp: float = 0.3, rate: int = 16_000) -> Sound:
    t = np.arange(int(seconds * rate)) / rate
    return Sound(to_int16(amp * np.sin(2 * np.pi * freq * t)), rate)


def dominant_hz(sound: Sound) -> float:
    spectrum = np.abs(np.fft.rfft(sound.pcm.astype(float)))
    return float(np.argmax(spectrum) * sound.sample_rate / len(sound))


def test_sound_accepts_only_mono_int16():
    with pytest.raises(ValueError, match="1-D int16"):
        Sound(np.zeros(10, np.float32))
    with pytest.raises(ValueError, match="1-D int16"):
        Sound(np.zeros((10, 2), np.int16))
    assert Sound(np.zeros(8000, np.int16)).duration == 0.5


def test_join_puts_exact_gaps_between_sounds():
    a, b = Sound(np.ones(3, np.int16)), Sound(np.full(2, 7, np.int16))
    assert join([a, b], gap=0.0005).pcm.tolist() == [1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 7, 7]
    assert len(join([])) == 0
    with pytest.raises(ValueError, match="8000 Hz"):
        join([a, Sound(np.ones(3, np.int16), 8000)])
    assert len(silence(0.25)) == 4000


def test_volume_is_identity_at_one_and_scales_below():
    pcm = np.array([-32768, -1000, 0, 999, 32767], np.int16)
    assert with_volume(pcm, 1.0) is pcm
    assert with_volume(pcm, 0.5).tolist() == [-16384, -500, 0, 500, 16384]
    assert not with_volume(pcm, 0.0).any()
    with pytest.raises(ValueError, match="between 0 and 1"):
        with_volume(pcm, -0.1)


def test_wav_round_trip_and_atomic_overwrite(tmp_path):
    path = tmp_path / "x.wav"
    s = tone(440, 0.1)
    write_wav(path, s)
    back = read_wav(path)
    assert back.sample_rate == 16_000 and np.array_equal(back.pcm, s.pcm)
    with pytest.raises(ValueError):
        write_wav(path, Sound(np.zeros(4, np.int16), -1))
    assert np.array_equal(read_wav(path).pcm, s.pcm)  # the old file survives a failed write
    assert [p.name for p in tmp_path.iterdir()] == ["x.wav"]


def test_reading_a_non_wav_is_one_line(tmp_path):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"not a wav at all")
    with pytest.raises(ValueError, match=r"bad.wav: not a readable WAV"):
        read_wav(bad)


def test_resampling_keeps_length_ratio_and_pitch():
    s = tone(440, 0.5, rate=22_050)
    r = resample(s, 16_000)
    assert r.sample_rate == 16_000 and len(r) == 8000
    assert dominant_hz(r) == pytest.approx(440, abs=2)
    assert np.abs(r.pcm).max() == pytest.approx(np.abs(s.pcm).max(), rel=0.02)
    # no energy above the new Nyquist folds back: a 10 kHz tone vanishes
    # (the abrupt ends of the test tone do carry low frequencies: skip them)
    assert np.abs(resample(tone(10_000, 0.5, rate=22_050), 16_000).pcm[400:-400]).max() < 100


def test_trim_cuts_silence_to_a_short_pad():
    s = join([silence(0.3), tone(300, 0.2), silence(0.5)])
    t = trim_silence(s, pad=0.01)
    assert 0.2 <= t.duration <= 0.2 + 2 * 0.01 + 0.04
    assert t.pcm[0] == 0 and t.pcm[-1] == 0  # faded edges: no click
    assert len(trim_silence(silence(0.2))) == 0


def test_loudness_is_matched_and_peaks_never_clip():
    quiet, loud = tone(300, 0.3, 0.01), tone(800, 0.3, 0.9)
    for s in (quiet, loud):
        assert active_level_db(normalize_loudness(s)) == pytest.approx(TARGET_ACTIVE_DB, abs=0.1)
    spiky = Sound(to_int16(np.r_[np.full(3000, 0.001), [0.9], np.full(3000, 0.001)]))
    assert np.abs(normalize_loudness(spiky).pcm).max() <= PEAK_LIMIT * 32767 + 1
