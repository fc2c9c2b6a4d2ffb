"""phoneagent: self-hosted, telephony-first AI phone agent on LiveKit."""

__version__ = "0.1.0"
