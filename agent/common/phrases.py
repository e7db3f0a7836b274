"""The phrase book: every fixed line the assistant says, in one place (tools' answers are their own).

Kept at the bottom layer so the gate, the audio key, the controller and the reply path all take
their words from here; a translation or a new voice persona changes this file only.
"""
from __future__ import annotations

import math

from tools.common.devices import DeviceState
from tools.common.errors import ErrorCode

# the session
GOODBYE = "Goodbye. I'm locking now."
UNLOCKED = "I'm listening."


def greeting(address_as: str) -> str:
    """Said on unlock; short, so it plays while the answer is thought and never delays it."""
    return f"Hi {address_as}."


# the gate: "Sorry, I can't unlock: <why>."
def refusal(why: str) -> str:
    return f"Sorry, I can't unlock: {why}."


NOBODY_ENROLLED = "nobody is enrolled yet"
VOICE_TOO_SHORT = "I didn't hear enough of your voice"
NO_CAMERA = "I have no camera or face video to check your face"
STILL_PHOTO = "a still photo can't show me you are really there"
CAMERA_BROKEN = "my camera isn't working"
NO_FACE = "I can't see your face"
VOICE_UNKNOWN = "I don't recognise your voice"
FACE_MISMATCH = "your face doesn't match"
NOT_LIVE = "I couldn't see that you are a live person"
DIFFERENT_PEOPLE = "your voice and face belong to different people"
CHECK_FAILED = "something went wrong while checking who you are"

# the audio key (agent/identity/audio_key.py, agent/session/key_steps.py)
PASSPHRASE_REFUSED = refusal("that wasn't your passphrase in your voice")
CHALLENGE_REFUSED = refusal("that wasn't the phrase I asked for in your voice")
CHALLENGE_LATE = refusal("I didn't hear the phrase in time")


def wait_text(seconds: float) -> str:
    """The lockout line: whole minutes, rounded up."""
    minutes = max(1, math.ceil(seconds / 60 - 1e-9))
    return f"Too many tries; wait {'a minute' if minutes == 1 else f'{minutes} minutes'}."


# the controller and the reply path
FALLBACK_GARBLED = "Sorry, I got muddled there. Could you say that again?"
FALLBACK_FAILED = "Sorry, something went wrong on my side and I can't answer right now."
FALLBACK_TOOL = "Sorry, I couldn't do that: {problem}."
# failures the user can act on (everything else: FALLBACK_FAILED)
SPOKEN_ERRORS = {
    ErrorCode.NO_SPEECH: "Sorry, I didn't hear any words there.",
    ErrorCode.INPUT_TOO_LONG: "That was too long for me to take in at once. Could you say it more briefly?",
}


# devices (tools/common/devices.py): a lost camera or microphone, retries, and its return
def device_line(device: str, state: DeviceState) -> str:
    """The status line for a device's change (said when it is lost and when it is back; retries are logged)."""
    if state is DeviceState.DOWN:
        return f"I've lost the {device}; I'll keep trying."
    if state is DeviceState.RECONNECTING:
        return f"I'm still trying to reach the {device}."
    return f"The {device} is back."
