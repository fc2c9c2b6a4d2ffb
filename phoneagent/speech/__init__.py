"""Speech for the phone line: local models (Piper, faster-whisper), audio helpers, and the providers
per AGENT_MODE (providers.py: Deepgram, OpenAI, OpenAI-compatible servers, with fallback)."""
