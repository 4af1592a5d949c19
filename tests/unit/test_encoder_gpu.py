"""CUDA code paths: the same parity checks on the GPU; skipped where there is none."""

from __future__ import annotations

import numpy as np
import pytest

from ner_os.encoder import Encoder
from test_encoder_tiny import CORPUS, LAYER, max_abs_diff, tiny_model_dir

torch = pytest.importorskip("torch")
pytestmark = [pytest.mark.unit, pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU")]


@pytest.fixture(autouse=True)
def exact_matmuls():
    previous = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32 = previous


@pytest.mark.parametrize("arch", ["llama", "gemma3_text", "qwen2"])
def test_torch_truncated_on_cuda_equals_cpu_reference(arch, tmp_path_factory):
    model = tiny_model_dir(arch, tmp_path_factory)
    cache = tmp_path_factory.getbasetemp()
    cuda = Encoder.load("custom", model=model, layer=LAYER, backend="torch", device="cuda", cache_dir=cache)
    cuda_reference = Encoder.load("custom", model=model, layer=LAYER, backend="torch", device="cuda", mode="reference", cache_dir=cache)
    cpu_reference = Encoder.load("custom", model=model, layer=LAYER, backend="torch", mode="reference", cache_dir=cache)
    got = cuda.encode(CORPUS)
    assert max_abs_diff(got, cuda_reference.encode(CORPUS)) <= 1e-4
    assert max_abs_diff(got, cpu_reference.encode(CORPUS)) <= 1e-4
    assert all(item.vectors.dtype == np.float32 for item in got)


def test_onnx_cuda_provider_equals_cpu_reference(tmp_path_factory):
    ort = pytest.importorskip("onnxruntime")
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        pytest.skip("onnxruntime-gpu is not installed")
    model = tiny_model_dir("gemma3_text", tmp_path_factory)
    cache = tmp_path_factory.mktemp("cuda-cache")
    onnx = Encoder.load("custom", model=model, layer=LAYER, backend="onnx", device="cuda", cache_dir=cache)
    assert onnx.runner.session.get_providers()[0] == "CUDAExecutionProvider"
    reference = Encoder.load("custom", model=model, layer=LAYER, backend="torch", mode="reference", cache_dir=cache)
    assert max_abs_diff(onnx.encode(CORPUS), reference.encode(CORPUS)) <= 1e-4


@pytest.mark.model
def test_gemma_on_cuda_matches_cpu():
    cuda = Encoder.load("gemma3-270m", backend="torch", device="cuda")
    cpu = Encoder.load("gemma3-270m", backend="torch")
    texts = ["The Eiffel Tower is in Paris.", "Tyrannosaurus rex lived in Montana about 66 million years ago."]
    assert max_abs_diff(cuda.encode(texts), cpu.encode(texts)) <= 1e-3
