"""Shared by every stage: settings from config.yaml, model cache paths, audio files, stage timings,
run outputs saved whole or not at all (``saving.py``)."""
