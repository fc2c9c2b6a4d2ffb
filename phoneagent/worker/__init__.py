"""The livekit-agents worker that answers SIP participants."""
