"""Database: engine and sessions, ORM models (SQLAlchemy 2.0 typed mappings). Only the control plane writes
to it."""
