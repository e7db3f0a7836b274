"""Stage 1, listen: sources -> echo canceller -> VAD (+ barge-in) -> wake word, and ASR.

sources.py (file, microphone, paced frames) -> echo.py (WebRTC AEC) -> frontend.py (one frame:
echo -> VAD -> barge-in) -> vad.py (webrtcvad + Silero, turn state) -> wakeword.py (openWakeWord)
-> asr.py (faster-whisper).
"""
