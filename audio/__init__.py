"""What the wearer hears: spoken clips, earcons, runtime speech and playback.

Every sound is a :class:`~audio.sound.Sound` (mono int16 PCM). A
:class:`~audio.voice.VoicePack` turns a label into a Sound; a
:class:`~audio.player.Player` (PyAudio, or a WAV timeline for ``--audio-out``)
plays it. The split keeps the daemon testable without a sound card.
"""
from pathlib import Path

AUDIO_DIR = Path(__file__).resolve().parent
CLIPS_DIR = AUDIO_DIR / "clips"
