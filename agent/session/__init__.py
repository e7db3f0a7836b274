"""The session: the path of one utterance, file by file.

    stages.py       one thread per stage, joined by queues, one stop event:
                    source -> VAD -> wake word -> gate -> ASR -> controller -> TTS -> sink
                      agent/listen/sources.py     16 kHz frames from a file or the microphone (reopened when lost)
                      agent/listen/frontend.py    echo canceller -> VAD -> barge-in, per frame
                      agent/listen/wakeword.py    "hey jarvis"; the command is cut after it
                      agent/identity/gate.py      voice of the command + live face, one Decision
                      agent/listen/asr.py         faster-whisper (started at the first pause)
                      agent/think/controller.py   answer or tool call (tools/), streamed
                      agent/speak/reply.py        the one reply path -> speech_out.py -> playback.py
    events.py       the typed session events (what ``main.py run --json`` prints)
    state.py        the state machine: LOCKED -> VERIFYING -> ACTIVE -> LOCKED (pure logic)
    conductor.py    the session thread: the state machine applied to the stages' results
    turns.py        pending turns (speculative ASR at a pause, kept until the utterance ends)
    key_steps.py    passphrase / challenge / lockout between the gate and the unlock
    perception.py   the camera stage (faces, hands, objects) beside the audio; gestures -> mode
    mapping.py      the SLAM stage for query_map
    scripted.py     conversations as audio sources (demo, benchmarks, soak, tests)
    assistant.py    the loaded models and the text/spoken turns of ``ask``/``turn``/``serve``
    runner.py       builds all of it from Settings and runs one session
"""
