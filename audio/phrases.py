"""What each clip says, per language: the single source for the clip maker,
the voice packs and the offline fallback for status sentences.

Keys are language-neutral: an expression label, an event name, or a status
word. The status words (digits, "model", "version", ...) let the device
speak its status from clips when espeak-ng is missing, in the wearer's
language.
"""
from __future__ import annotations

from core.labels import EXPRESSIONS

EVENTS = ("noface", "muted", "unmuted", "camera_error", "model_updated", "error")
DIGITS = tuple(str(d) for d in range(10))
STATUS_WORDS = ("model", "version", "point", "camera", "ok", "not_working", "no") + DIGITS
# Said before an expression the device is not sure of: "maybe sad" (see device.decide).
HEDGE = "maybe"
# The answer to "who is there" (device.people): how many, how near, facing or not.
PERSON_WORDS = ("nobody", "person", "people", "close", "arm_length", "few_metres", "far", "facing",
                "turned_away")

# espeak-ng voice per language.
ESPEAK_VOICES = {"en": "en-us", "id": "id"}
# Words per minute: labels (and the hedge) a little slower than espeak's default 175, for
# clarity through an earphone in a street; status and person sentences (digits, a
# version) faster, as they are longer and asked for on purpose; this also
# keeps the clips of both languages under 1.5 MB.
LABEL_SPEED = 165
STATUS_SPEED = 195

PHRASES: dict[str, dict[str, str]] = {
    "en": {
        "angry": "angry", "disgust": "disgust", "fear": "fear", "happy": "happy",
        "neutral": "neutral", "sad": "sad", "surprise": "surprise",
        "noface": "no face", "muted": "muted", "unmuted": "sound on",
        "camera_error": "camera problem", "model_updated": "new model", "error": "error",
        "model": "model", "version": "version", "point": "point", "camera": "camera",
        "ok": "okay", "not_working": "not working", "no": "no",
        "0": "zero", "1": "one", "2": "two", "3": "three", "4": "four",
        "5": "five", "6": "six", "7": "seven", "8": "eight", "9": "nine",
        "maybe": "maybe",
        "nobody": "nobody", "person": "person", "people": "people", "close": "close",
        "arm_length": "an arm's length", "few_metres": "a few metres", "far": "far away",
        "facing": "facing you", "turned_away": "turned away",
    },
    "id": {
        "angry": "marah", "disgust": "jijik", "fear": "takut", "happy": "senang",
        "neutral": "netral", "sad": "sedih", "surprise": "terkejut",
        "noface": "tak ada wajah", "muted": "suara mati", "unmuted": "suara hidup",
        "camera_error": "kamera bermasalah", "model_updated": "model baru", "error": "kesalahan",
        "model": "model", "version": "versi", "point": "titik", "camera": "kamera",
        "ok": "baik", "not_working": "rusak", "no": "tanpa",
        "0": "nol", "1": "satu", "2": "dua", "3": "tiga", "4": "empat",
        "5": "lima", "6": "enam", "7": "tujuh", "8": "delapan", "9": "sembilan",
        "maybe": "mungkin",
        "nobody": "tak ada orang", "person": "orang", "people": "orang", "close": "dekat",
        "arm_length": "sejangkauan tangan", "few_metres": "beberapa meter", "far": "jauh",
        "facing": "menghadap anda", "turned_away": "berpaling",
    },
}

CLIP_KEYS = EXPRESSIONS + EVENTS + STATUS_WORDS + (HEDGE,) + PERSON_WORDS
