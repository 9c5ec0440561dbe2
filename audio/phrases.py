"""What each clip says, per language: the single source for the clip maker,
the voice packs and the offline fallback for status sentences.

Keys are language-neutral: an expression label, an event name, or a status
word. The status words (digits, "model", "version", ...) let the device
speak its status from clips when espeak-ng is missing, in the wearer's
language.
"""
from __future__ import annotations

EXPRESSIONS = ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise")
EVENTS = ("noface", "muted", "unmuted", "camera_error", "model_updated", "error")
DIGITS = tuple(str(d) for d in range(10))
STATUS_WORDS = ("model", "version", "point", "camera", "ok", "not_working", "no") + DIGITS

# espeak-ng voice per language.
ESPEAK_VOICES = {"en": "en-us", "id": "id"}
# Words per minute: labels a little slower than espeak's default 175, for
# clarity through an earphone in a street; status sentences (digits, a
# version) faster, as they are longer and asked for on purpose; this also
# keeps the clips of both languages under 1 MB.
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
    },
}

CLIP_KEYS = EXPRESSIONS + EVENTS + STATUS_WORDS
