"""Real peers for tests and benchmarks: a SIP phone (baresip) that plays and records 8 kHz G.711."""
