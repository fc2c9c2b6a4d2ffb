"""Speech for the phone line: local models (Piper, faster-whisper) and audio helpers."""
