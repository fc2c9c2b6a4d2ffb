"""Install and run the real local LiveKit stack: Redis, livekit-server, livekit-sip."""
