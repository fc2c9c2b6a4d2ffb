"""phoneagent: self-hosted AI phone agent on LiveKit."""
