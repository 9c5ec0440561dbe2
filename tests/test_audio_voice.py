"""Voice packs: labels to sounds, and status sentences with or without espeak-ng."""
from __future__ import annotations

import logging
import shutil

import numpy as np
import pytest

from audio import CLIPS_DIR
from audio.compose import SENTENCE_GAP, WORD_GAP, compose, status_keys, version_keys, wording
from audio.dsp import TARGET_ACTIVE_DB, active_level_db
from audio.earcons import earcon, face_earcon
from audio.espeak import SpeechUnavailable, parse_stream_wav, speak
from audio.phrases import EVENTS
from audio.sound import join, silence
from audio.voice import VoicePack, available_languages
from audio.wavfile import read_wav
from core.labels import EXPRESSIONS

STATUS = status_keys("1.2", camera_ok=True)


def needs_espeak() -> None:
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed")


@pytest.mark.parametrize("language", ["en", "id"])
def test_speech_mode_says_the_committed_clips(language):
    voice = VoicePack("speech", language)
    assert set(voice.labels()) == set(EXPRESSIONS + EVENTS + ("face", "facing"))
    for label in EXPRESSIONS + EVENTS:
        assert np.array_equal(voice.sound(label).pcm, read_wav(CLIPS_DIR / language / f"{label}.wav").pcm)
    assert np.array_equal(voice.sound("face").pcm, face_earcon("face").pcm)


def test_earcon_mode_plays_tones():
    voice = VoicePack("earcon", "en")
    for label in EXPRESSIONS + EVENTS:
        assert np.array_equal(voice.sound(label).pcm, earcon(label).pcm)


def test_unknown_language_mode_and_label_list_what_exists():
    assert available_languages() == ["en", "id"]
    with pytest.raises(ValueError, match=r"^unknown language 'fr'; available: en, id$"):
        VoicePack("speech", "fr")
    with pytest.raises(ValueError, match=r"^unknown audio mode 'loud'; available: speech, earcon$"):
        VoicePack("loud", "en")
    with pytest.raises(ValueError, match=r"^unknown label 'joy'; available: angry, disgust, .*, face, facing$"):
        VoicePack("speech", "en").sound("joy")


def test_an_incomplete_clip_folder_is_reported_at_start(tmp_path):
    shutil.copytree(CLIPS_DIR / "en", tmp_path / "en")
    (tmp_path / "en" / "sad.wav").unlink()
    (tmp_path / "en" / "7.wav").unlink()
    with pytest.raises(ValueError, match=r"clips for 'en' incomplete in .*: missing sad, 7$"):
        VoicePack("speech", "en", clips_dir=tmp_path)


def test_the_status_is_built_as_clip_keys():
    assert STATUS == ["model", "version", "1", "point", "2", ",", "camera", "ok"]
    assert status_keys(None, camera_ok=False) == ["no", "model", ",", "camera", "not_working"]
    assert version_keys("0.0.1-provisional") == ["0", "point", "0", "point", "1"]
    assert version_keys("12") == ["1", "2"]
    assert version_keys("unversioned") == []
    assert wording(STATUS, "id") == "model versi satu titik dua, kamera baik"
    assert wording(STATUS, "en") == "model version one point two, camera okay"


def test_a_key_without_a_clip_is_refused_at_once():
    voice = VoicePack("speech", "en", espeak="/nonexistent/espeak-ng")
    with pytest.raises(ValueError, match=r"^no clip for 'hello' in \['model', 'hello'\]$"):
        voice.sentence(["model", "hello"])
    with pytest.raises(ValueError, match="nothing to say"):
        compose([","], voice.clips)


def test_status_is_spoken_by_espeak_at_clip_loudness():
    needs_espeak()
    voice = VoicePack("speech", "en")
    said = voice.sentence(STATUS)
    assert 1.0 < said.duration < 4.0
    assert active_level_db(said) == pytest.approx(TARGET_ACTIVE_DB, abs=0.2)
    # Indonesian: the same status, worded in Indonesian for espeak-ng's Indonesian voice
    said_id = VoicePack("speech", "id").sentence(STATUS)
    assert np.array_equal(said_id.pcm, speak("model versi satu titik dua, kamera baik", "id").pcm)


@pytest.mark.parametrize("binary", ["/nonexistent/espeak-ng", "false"])
def test_without_working_espeak_the_status_is_composed_from_clips(binary, caplog):
    voice = VoicePack("earcon", "id", espeak=binary)
    clip = voice.clips
    with caplog.at_level(logging.WARNING):
        said = voice.sentence(STATUS)
        voice.sentence(STATUS)
    word, pause = silence(WORD_GAP), silence(SENTENCE_GAP)
    expected = join([clip["model"], word, clip["version"], word, clip["1"], word, clip["point"], word,
                     clip["2"], pause, clip["camera"], word, clip["ok"]])
    assert np.array_equal(said.pcm, expected.pcm)
    warnings = [r for r in caplog.records if "runtime speech unavailable" in r.getMessage()]
    assert len(warnings) == 1  # said once, not on every status request


def test_espeak_stream_header_is_parsed_and_garbage_refused():
    header = (b"RIFF\x24\xf0\xff\x7fWAVEfmt \x10\x00\x00\x00\x01\x00\x01\x00\x22\x56\x00\x00"
              b"\x44\xac\x00\x00\x02\x00\x10\x00data\x00\xf0\xff\x7f")
    sound = parse_stream_wav(header + np.array([1, -2, 3], "<i2").tobytes() + b"\x00")
    assert sound.sample_rate == 22_050 and sound.pcm.tolist() == [1, -2, 3]
    with pytest.raises(SpeechUnavailable, match="no WAV"):
        parse_stream_wav(b"nonsense")


@pytest.mark.parametrize("mode, language", [("speech", "en"), ("speech", "id"), ("earcon", "en")])
def test_a_hedge_is_quieter_than_the_sure_word_and_in_speech_says_maybe_first(mode, language):
    voice = VoicePack(mode, language)
    for label in EXPRESSIONS:
        sure, hedge = voice.sound(label), voice.hedge(label)
        assert active_level_db(hedge) < active_level_db(sure) - 6, label
        if mode == "speech":
            maybe = read_wav(CLIPS_DIR / language / "maybe.wav")
            assert hedge.duration == pytest.approx(maybe.duration + WORD_GAP + sure.duration, abs=1e-3), label
        else:
            assert hedge.duration == sure.duration, label
    with pytest.raises(ValueError, match="unknown expression 'noface'"):
        voice.hedge("noface")
