"""Shared by every stage: settings from config.yaml, model cache paths, audio files, stage timings."""
