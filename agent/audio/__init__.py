"""Listening front end: audio sources, voice activity detection and the wake word."""
