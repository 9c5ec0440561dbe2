"""The committed voice clips, and the script that makes them."""
from __future__ import annotations

import shutil
import wave

import numpy as np
import pytest

from audio import CLIPS_DIR
from audio.dsp import TARGET_ACTIVE_DB, active_level_db, frame_rms
from audio.espeak import SpeechUnavailable, espeak_version
from audio.phrases import CLIP_KEYS, PHRASES
from audio.sound import SAMPLE_RATE, to_float
from audio.wavfile import read_wav
from tools import make_voice_clips
from tools.cli import main as facecue_model


def espeak_or_skip() -> str:
    try:
        return espeak_version()
    except SpeechUnavailable as exc:
        pytest.skip(str(exc))


def test_phrase_table_covers_every_clip_in_every_language():
    assert {"en", "id"} <= PHRASES.keys()
    for language, phrases in PHRASES.items():
        assert tuple(phrases) == CLIP_KEYS, language
        assert all(text.strip() for text in phrases.values()), language


@pytest.mark.parametrize("language", sorted(PHRASES))
def test_committed_clip_set_is_complete(language):
    folder = CLIPS_DIR / language
    assert sorted(p.stem for p in folder.glob("*.wav")) == sorted(CLIP_KEYS)
    for key in CLIP_KEYS:
        with wave.open(str(folder / f"{key}.wav")) as w:
            assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, SAMPLE_RATE), key


@pytest.mark.parametrize("language", sorted(PHRASES))
def test_clips_are_equally_loud_trimmed_and_short(language):
    for key in CLIP_KEYS:
        clip = read_wav(CLIPS_DIR / language / f"{key}.wav")
        assert 0.15 < clip.duration < 1.5, key
        assert active_level_db(clip) == pytest.approx(TARGET_ACTIVE_DB, abs=0.2), key
        rms = frame_rms(to_float(clip.pcm), 160)  # 10 ms frames
        loud = rms >= rms.max() * 10 ** (-30 / 20)
        # speech starts and ends within 30 ms of the clip's edges (pad + one frame)
        assert loud[:3].any() and loud[-3:].any(), key
        assert abs(int(clip.pcm[0])) < 50 and abs(int(clip.pcm[-1])) < 50, key  # faded edges: no click


def test_both_languages_fit_in_one_and_a_half_megabytes():
    # 0.95 MB for the labels and the status words, 0.37 MB for the hedge and the
    # person words; the budget catches a clip made at the wrong rate or speed.
    total = sum(p.stat().st_size for p in CLIPS_DIR.glob("*/*.wav"))
    assert total < 1_500_000, total


def test_the_script_is_deterministic_atomic_and_removes_stale_clips(tmp_path, capsys):
    espeak_or_skip()
    out = tmp_path / "clips"
    assert make_voice_clips.main(["--languages", "en", "--out", str(out)]) == 0
    first = {p.name: p.read_bytes() for p in (out / "en").iterdir()}
    assert sorted(first) == sorted(f"{k}.wav" for k in CLIP_KEYS)
    (out / "en" / "old.wav").write_bytes(b"stale")
    (out / "en" / "sad.wav").write_bytes(b"damaged")
    capsys.readouterr()
    assert make_voice_clips.main(["--languages", "en", "--out", str(out), "--check"]) == 1
    assert "differ: sad.wav, old.wav (stale)" in capsys.readouterr().out
    assert (out / "en" / "sad.wav").read_bytes() == b"damaged"  # --check writes nothing
    assert make_voice_clips.main(["--languages", "en", "--out", str(out)]) == 0
    assert "changed: sad.wav, old.wav (stale)" in capsys.readouterr().out
    assert {p.name: p.read_bytes() for p in (out / "en").iterdir()} == first  # same bytes again
    assert sorted(p.name for p in out.iterdir()) == ["en", "espeak-version.txt"]  # no temp files


def test_committed_clips_are_what_the_script_makes(capsys):
    version = espeak_or_skip()
    recorded = (CLIPS_DIR / make_voice_clips.VERSION_FILE).read_text().strip()
    if version != recorded:
        pytest.skip(f"clips made with espeak-ng {recorded}, this is {version}")
    assert make_voice_clips.main(["--check"]) == 0, capsys.readouterr().out


def test_unknown_language_is_one_line(capsys):
    with pytest.raises(SystemExit) as exc:
        make_voice_clips.main(["--languages", "xx"])
    assert exc.value.code == 2
    assert "unknown language(s) xx; available: en, id" in capsys.readouterr().err


def test_missing_espeak_is_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # a PATH without espeak-ng
    assert shutil.which("espeak-ng") is None
    assert facecue_model(["voice-clips", "--out", str(tmp_path / "clips")]) == 1
    assert capsys.readouterr().err.strip() == "facecue: error: espeak-ng is not installed"
    assert not (tmp_path / "clips").exists()


def test_clips_differ_from_one_another():
    clips = [read_wav(CLIPS_DIR / "en" / f"{k}.wav").pcm for k in CLIP_KEYS]
    assert len({c.tobytes() for c in clips}) == len(clips)
    assert all(np.abs(c).max() > 10_000 for c in clips)
