"""The FastAPI control plane: routers and auth only; business logic lives in calls/ and telephony/."""
