"""The torch encoder on a CUDA GPU against the same encoder on the CPU: parity and throughput.

The default profile (Gemma 3 270M, truncated after layer 15's ``v_proj``) encodes the demo sample's
texts (``ner_os/samples/fewnerd-sample.jsonl``, 306 Few-NERD sentences) on ``cuda`` and on the CPU
with every core; reports the largest absolute difference of the value vectors and real tokens per
second (no padding, median of ``--rounds`` timed passes after one warm-up). ONNX Runtime's CUDA
provider needs onnxruntime-gpu, measured where it is installed. Writes
``bench/results/encoder_cuda.json``:

    python bench/encoder_cuda.py
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from _common import RESULTS, SAMPLE, write_result
from ner_os.encoder import Encoder



def tokens_per_second(encoder: Encoder, texts: list[str], rounds: int, synchronise) -> tuple[float, list]:
    encoded = encoder.encode(texts)  # warm-up (kernels, allocator)
    n_tokens = sum(len(item.vectors) for item in encoded)
    times = []
    for _ in range(rounds):
        synchronise()
        started = time.perf_counter()
        encoder.encode(texts)
        synchronise()
        times.append(time.perf_counter() - started)
    return n_tokens / float(np.median(times)), encoded


def main(argv=None) -> dict:
    import torch

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch-tokens", type=int, default=2048)
    parser.add_argument("--out", default=str(RESULTS / "encoder_cuda.json"))
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        raise SystemExit("no CUDA GPU here")
    started = time.perf_counter()
    texts = [json.loads(line)["text"] for line in SAMPLE.read_text().splitlines() if line.strip()]
    runs = {}
    for device in ("cuda", "cpu"):
        encoder = Encoder.load("gemma3-270m", backend="torch", device=device, batch_tokens=args.batch_tokens)
        synchronise = torch.cuda.synchronize if device == "cuda" else (lambda: None)
        runs[device] = tokens_per_second(encoder, texts, args.rounds, synchronise)
    difference = max(float(np.abs(a.vectors - b.vectors).max()) for a, b in zip(runs["cuda"][1], runs["cpu"][1]))
    report = {
        "what": "Gemma 3 270M truncated after its default layer's v_proj, torch backend, the demo sample's texts",
        "texts": len(texts),
        "tokens": sum(len(item.vectors) for item in runs["cpu"][1]),
        "batch_tokens": args.batch_tokens,
        "tokens_per_s": {device: round(rate, 1) for device, (rate, _) in runs.items()},
        "cuda_over_cpu": round(runs["cuda"][0] / runs["cpu"][0], 2),
        "max_abs_diff_cuda_vs_cpu": difference,
        "gpu": torch.cuda.get_device_name(0),
        "cpu_threads": torch.get_num_threads(),
        "torch": torch.__version__,
    }
    write_result(args.out, report, "bench/encoder_cuda.py", argv, started)
    print(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
