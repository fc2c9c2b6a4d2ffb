"""Call records: queries over the call log, event ingest, lifecycle."""
