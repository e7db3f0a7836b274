"""Stage 4, speak: the one reply path, from words to the loudspeaker.

reply.py (words or a fixed line -> controller -> streamed TTS -> a sink) with phrases.py (every
fixed line the assistant says), tts.py (Piper), speech_out.py (the TTS worker thread and sinks)
and playback.py (the loudspeaker on the stream clock: what plays, when, its echo).
"""
