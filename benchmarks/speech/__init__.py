"""Speech benchmark: local Whisper on phone-style caller speech at 16 kHz vs 8 kHz G.711, a decoding
sweep at 8 kHz, and Piper's time to first audio. Run: ``uv run --frozen --no-sync python -m
benchmarks.speech``; results go to benchmarks/results/speech-<UTC stamp>.{json,md,svg}."""
