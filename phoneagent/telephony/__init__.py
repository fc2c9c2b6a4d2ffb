"""LiveKit adapters: every `livekit.api` call of phoneagent lives here, its errors translated once."""
