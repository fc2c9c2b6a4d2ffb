"""Call recording files: merging the track recordings egress made, reading Ogg/Opus, storage."""
