"""MMChat agent: pipeline, session gate, controller, audio and identity stages."""
