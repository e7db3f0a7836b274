"""Stage 2, identity: who is speaking and who is in view, before anything is answered.

gate.py (the session's check: voice of the command + face in view, one ``Decision``) uses
voiceprint.py (ECAPA), faces.py (dlib encodings), liveness.py (blink/motion), over
profiles.py (embeddings only, on disk) and preferences.py; verify.py enrols and decides for
the CLI; face_classifier.py / face_sync.py name enrolled faces; phrase.py and audio_key.py are
the spoken passphrase/challenge.
"""
