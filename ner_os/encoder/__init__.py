"""The encoder stage: raw text -> per-token value vectors of one mid layer of a decoder LLM.

``weights`` (GGUF package / local path / hub id -> cached safetensors), ``truncated`` (the module
that stops at block L's v_proj), ``export`` (that module through Optimum to ONNX, with a manifest),
``runtime`` (``Encoder``: ONNX Runtime or torch behind one interface).
"""

from ner_os.encoder.runtime import EncodedText, Encoder, LayeredText

__all__ = ["Encoder", "EncodedText", "LayeredText"]
