"""The ONNX Runtime backend: a session over an exported truncated graph (one layer)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnxruntime as ort

from ner_os.encoder.export import OUTPUT, read_manifest
from ner_os.encoder.runner import Backend
from ner_os.encoder.weights import load_tokenizer
from ner_os.errors import ConfigError


class OnnxRunner:
    """An ONNX Runtime session over an exported truncated graph (one layer)."""

    def __init__(self, graph: str | Path, layer: int, device: str = "cpu", threads: int | None = None):
        self.layer = layer
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.intra_op_num_threads = threads or cpu_threads()
        options.inter_op_num_threads = 1
        # no busy-waiting between ops: the loader runs span detection and indexing beside the encoder
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        providers = ["CPUExecutionProvider"]
        if device == "cuda":
            if "CUDAExecutionProvider" not in ort.get_available_providers():
                raise ConfigError("device=cuda with backend=onnx needs onnxruntime-gpu (pip install 'ner-os[gpu]')")
            providers.insert(0, "CUDAExecutionProvider")
        self.session = ort.InferenceSession(str(graph), sess_options=options, providers=providers)

    def check_layers(self, layers: list[int]) -> None:
        if layers != [self.layer]:
            raise ConfigError(f"this ONNX export reads layer {self.layer} only; use backend=torch to read layers {layers}")

    def run(self, input_ids: np.ndarray, attention_mask: np.ndarray, layers: list[int]) -> dict[int, np.ndarray]:
        (values,) = self.session.run([OUTPUT], {"input_ids": input_ids, "attention_mask": attention_mask})
        return {self.layer: values.astype(np.float32, copy=False)}


def onnx_backend(directory: str | Path, device: str = "cpu", threads: int | None = None) -> Backend:
    """The runner, tokenizer, d_v and window of the export in ``directory``."""
    manifest = read_manifest(directory)
    runner = OnnxRunner(Path(directory) / manifest["graph"], manifest["layer"], device=device, threads=threads)
    tokenizer = load_tokenizer(str(directory))
    window = manifest.get("max_position_embeddings") or 1 << 30
    return Backend(runner, tokenizer, d_v=manifest["d_v"], window=window)


def cpu_threads() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1
