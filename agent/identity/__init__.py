"""Identity stage: voiceprint, face check, liveness and profiles."""
