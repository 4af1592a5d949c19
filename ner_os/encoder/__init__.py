"""The encoder stage: raw text -> per-token value vectors of one mid layer of a decoder LLM.

``weights`` (GGUF package / local path / hub id -> cached safetensors), ``truncated`` (the module
that stops at block L's v_proj), ``export`` (that module through Optimum to ONNX, with a manifest),
``tokens`` (start token, offsets, chunks, token-budget batches), ``runner`` (the ``Runner`` protocol)
with one module per backend (``onnx_runner``, ``torch_runner``), and ``encoder`` (``Encoder``: the
facade that chunks, batches and runs a backend). Importing the package imports neither torch nor
onnxruntime: a backend module is imported when an encoder is built with it.
"""

from ner_os.encoder.encoder import EncodedText, Encoder, LayeredText

__all__ = ["Encoder", "EncodedText", "LayeredText"]
