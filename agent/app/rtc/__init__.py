"""Live browser sessions over WebRTC (aiortc): see agent/app/rtc/hub.py."""
