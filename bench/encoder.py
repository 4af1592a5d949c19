"""Encoder throughput and int8 quality on real Few-NERD sentences (issue 3). Not a test.

    python bench/encoder.py [--sentences 500] [--reference-sentences 150] [--rounds 3] [--threads 2] [--rp-sentences 600]
                            [--profile-sentences 120]

In one run, with the same threads, in interleaved rounds (the machine is shared), on the first ``--sentences`` sentences of inter_test.txt:
(a) the reference way: full model forward + hook on v_proj, fixed batches of 50 in corpus order;
(b) the torch truncated module, (c) the ONNX fp32 export, (d) the ONNX int8 export, each with
length-sorted token-budget batches. tokens/s counts the texts' real tokens (no BOS, no padding).
FLOPs per token of (c) = 2 x the weights it multiplies (blocks 0..L-1 and block L's v_proj; the
embedding lookup multiplies nothing); the machine's fp32 matmul rate comes from large matmuls in
the same run, the faster of torch's BLAS and ONNX Runtime's MLAS in each round (each library's
rate is recorded: on this CPU MLAS runs a 2048 x 2048 GEMM ~1.5-1.8x faster than torch's, so a
torch-only rate would overstate the share). After the timed rounds, ONNX Runtime's profiler gives
(c)'s kernel time per operator type on ``--profile-sentences`` sentences (``op_profile``).
int8 quality: cosine of (d) to (c) per token, and macro R-Precision of raw mention vectors (gold
spans, last token) on the held-out train types (``choose_dev_types``) of ``--rp-sentences`` sentences of inter_train_slice2.txt, fp32 vs int8.
Writes bench/results/encoder.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np

from _common import FEWNERD, RESULTS, command, load_average, machine, utc_now
from ner_os.encoder import Encoder
from ner_os.evaluation.readers import read_bio

OUT = RESULTS / "encoder.json"
REFERENCE_BATCH = 50


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="gemma3-270m")
    parser.add_argument("--layer", type=int, default=None)
    parser.add_argument("--sentences", type=int, default=500)
    parser.add_argument("--reference-sentences", type=int, default=150,
                        help="(a) runs on this prefix of the sentences, in batches of 50 (it is the slow one)")
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds over slices of the sentences")
    parser.add_argument("--batch-tokens", type=int, default=2048)
    parser.add_argument("--rp-sentences", type=int, default=600, help="0 skips the R-Precision check")
    parser.add_argument("--profile-sentences", type=int, default=120, help="0 skips (c)'s per-operator profile")
    parser.add_argument("--data", type=Path, default=FEWNERD)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    load_at_start = load_average()
    texts = [sentence.text for _, sentence in zip(range(args.sentences), read_bio(args.data / "inter_test.txt"))]
    common = dict(layer=args.layer, batch_tokens=args.batch_tokens, threads=args.threads)
    reference = Encoder.load(args.profile, backend="torch", mode="reference", **common)
    variants = {
        "a_reference_full_forward_hook": reference,
        "b_torch_truncated": Encoder.load(args.profile, backend="torch", **common),
        "c_onnx_fp32": Encoder.load(args.profile, backend="onnx", dtype="fp32", **common),
        "d_onnx_int8": Encoder.load(args.profile, backend="onnx", dtype="int8", **common),
    }
    n_tokens = sum(len(reference.tokenize(text)[0]) for text in texts)
    print(f"{len(texts)} sentences, {n_tokens} tokens, {args.threads} threads", flush=True)

    for encoder in variants.values():
        encoder.encode(texts[:4])  # warm-up: first-call allocations and graph preparation ...
        encoder.tokenize_many(texts)  # ... and the whole tokenizer (the ONNX backend's loads on first long use)
    # the machine is shared: run the variants in interleaved rounds so that load swings hit all alike
    slices = {name: split(texts, args.rounds) for name in variants}
    # (a) keeps whole batches of 50 in corpus order: its prefix is cut at batch boundaries
    reference_batches = split(split(texts[: args.reference_sentences], -(-args.reference_sentences // REFERENCE_BATCH)), args.rounds)
    slices["a_reference_full_forward_hook"] = [[text for batch in part for text in batch] for part in reference_batches]
    seconds = dict.fromkeys(variants, 0.0)
    outputs = {name: [] for name in variants}
    matmul_rates, library_rates = [], {"torch": [], "onnxruntime_mlas": []}
    for round_index in range(args.rounds):
        library_rates["torch"].append(matmul_rate(args.threads))
        library_rates["onnxruntime_mlas"].append(ort_matmul_rate(args.threads))
        matmul_rates.append(max(rates[-1] for rates in library_rates.values()))
        for name, encoder in variants.items():
            batch = slices[name][round_index]
            started = time.perf_counter()
            outputs[name] += fixed_batches(encoder, batch) if name.startswith("a_") else encoder.encode(batch)
            seconds[name] += time.perf_counter() - started
        print(f"round {round_index + 1}/{args.rounds} done", flush=True)
    tokens_per_s = {name: sum(len(item.vectors) for item in outputs[name]) / seconds[name] for name in variants}
    matmul_flops = float(np.median(matmul_rates))
    for name, value in tokens_per_s.items():
        print(f"{name}: {value:.1f} tokens/s", flush=True)
    print(f"fp32 matmul: {matmul_flops / 1e9:.1f} GFLOP/s (sustained, median of {args.rounds} rounds)", flush=True)

    c, d = outputs["c_onnx_fp32"], outputs["d_onnx_int8"]
    cosine = token_cosines(d, c)
    parity = {
        name: max(float(np.abs(x.vectors - y.vectors).max()) for x, y in zip(outputs[name], outputs["a_reference_full_forward_hook"]))
        for name in ("b_torch_truncated", "c_onnx_fp32")
    }
    flops_per_token = 2 * multiplied_weights(variants["b_torch_truncated"])
    peak_share = tokens_per_s["c_onnx_fp32"] * flops_per_token / matmul_flops
    rp = r_precision_delta(variants["c_onnx_fp32"], variants["d_onnx_int8"], args) if args.rp_sentences else None
    op_profile = ort_op_profile(variants["c_onnx_fp32"], texts[: args.profile_sentences], args.threads) if args.profile_sentences else None

    result = {
        "profile": args.profile,
        "layer": variants["c_onnx_fp32"].layer,
        "sentences": len(texts),
        "reference_sentences": len(outputs["a_reference_full_forward_hook"]),
        "tokens": n_tokens,
        "threads": args.threads,
        "batch_tokens": args.batch_tokens,
        "tokens_per_s": {name: round(value, 1) for name, value in tokens_per_s.items()},
        "ratio_vs_reference": round(tokens_per_s["c_onnx_fp32"] / tokens_per_s["a_reference_full_forward_hook"], 2),
        "ratio_torch_truncated_vs_reference": round(tokens_per_s["b_torch_truncated"] / tokens_per_s["a_reference_full_forward_hook"], 2),
        "onnx_fp32_vs_torch_truncated": round(tokens_per_s["c_onnx_fp32"] / tokens_per_s["b_torch_truncated"], 2),
        "matmul_gflop_per_s": round(matmul_flops / 1e9, 1),
        "matmul_gflop_per_s_per_round": [round(rate / 1e9, 1) for rate in matmul_rates],
        "matmul_gflop_per_s_by_library": {name: [round(rate / 1e9, 1) for rate in rates] for name, rates in library_rates.items()},
        "rounds": args.rounds,
        "flops_per_token": flops_per_token,
        "peak_share": round(peak_share, 3),
        "int8_speedup": round(tokens_per_s["d_onnx_int8"] / tokens_per_s["c_onnx_fp32"], 2),
        "int8_cosine_to_fp32": {
            "mean": round(float(cosine.mean()), 4),
            "p1": round(float(np.percentile(cosine, 1)), 4),
            "min": round(float(cosine.min()), 4),
        },
        "int8_r_precision_delta": None if rp is None else rp["delta"],
        "int8_r_precision": rp if rp is not None else {"reason": "skipped (--rp-sentences 0)"},
        "max_abs_diff_vs_reference": parity,
        "op_profile": op_profile if op_profile is not None else {"reason": "skipped (--profile-sentences 0)"},
        "targets": {"ratio_vs_reference": 10, "peak_share": 0.6, "onnx_fp32_vs_torch_truncated": 1.2,
                    "int8_speedup": 1.6, "int8_r_precision_delta": 0.01},
        "command": command(),
        "machine": machine(processor=cpu_name(), load_average_at_start=load_at_start, load_average_at_end=load_average()),
        "date": utc_now(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({key: result[key] for key in ("tokens_per_s", "ratio_vs_reference", "onnx_fp32_vs_torch_truncated", "peak_share", "int8_speedup", "int8_cosine_to_fp32", "int8_r_precision_delta")}, indent=2))


def split(items: list, parts: int) -> list[list]:
    size = -(-len(items) // parts)
    return [items[i * size : (i + 1) * size] for i in range(parts)]


def fixed_batches(encoder: Encoder, texts: list[str]):
    """The reference way: batches of 50 texts in corpus order, padded to each batch's longest."""
    from ner_os.encoder import EncodedText

    out = []
    for first in range(0, len(texts), REFERENCE_BATCH):
        batch = texts[first : first + REFERENCE_BATCH]
        tokenized = [encoder.tokenize(text) for text in batch]
        width = 1 + max(len(ids) for ids, _ in tokenized)
        input_ids = np.full((len(batch), width), encoder.pad_token_id, dtype=np.int64)
        attention_mask = np.zeros_like(input_ids)
        for row, (ids, _) in enumerate(tokenized):
            input_ids[row, : 1 + len(ids)] = [encoder.start_token_id, *ids]
            attention_mask[row, : 1 + len(ids)] = 1
        values = encoder.runner.run(input_ids, attention_mask, [encoder.layer])[encoder.layer]
        out.extend(EncodedText(values[row, 1 : 1 + len(ids)], offsets) for row, (ids, offsets) in enumerate(tokenized))
    return out


def matmul_rate(threads: int, size: int = 2048, seconds: float = 3.0) -> float:
    """Sustained fp32 FLOP/s of back-to-back size x size matmuls for ``seconds`` (torch, ``threads`` threads).

    Sustained, not best-of: on a shared machine a best-of burst finds the moments when the other
    processes sleep, which the encoder runs, minutes long, never get all of.
    """
    import torch

    a, b = torch.randn(size, size), torch.randn(size, size)
    return square_matmul_rate(lambda: torch.mm(a, b), size, seconds)


def square_matmul_rate(multiply, size: int, seconds: float) -> float:
    """FLOP/s of ``multiply`` (one size x size by size x size product), warmed once, then run for ``seconds``."""
    multiply()
    count, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        multiply()
        count += 1
    return 2 * size**3 * count / (time.perf_counter() - started)


def ort_matmul_rate(threads: int, size: int = 2048, seconds: float = 3.0) -> float:
    """The same as :func:`matmul_rate` through ONNX Runtime's MLAS: a one-MatMul graph with a constant
    right side (as the encoder's weights are), the encoder's session settings (no spinning)."""
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    weight = numpy_helper.from_array(rng.standard_normal((size, size), dtype=np.float32), "weight")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "weight"], ["y"])], "matmul",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [size, size])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [size, size])], [weight])
    options = ort_options(threads)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    feed = {"x": rng.standard_normal((size, size), dtype=np.float32)}
    return square_matmul_rate(lambda: session.run(None, feed), size, seconds)


def ort_options(threads: int):
    """The session settings of :class:`~ner_os.encoder.onnx_runner.OnnxRunner` on CPU: sequential,
    ``threads`` intra-op threads, no spinning."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return options


def ort_op_profile(encoder: Encoder, texts: list[str], threads: int) -> dict:
    """(c)'s kernel time per operator type (share of the total) from ONNX Runtime's profiler, over the
    token-budget batches of ``texts``, on the graph (c) runs (the saved optimised one), its settings."""
    import tempfile

    import onnxruntime as ort

    from ner_os.encoder.tokens import padded_batch, token_budget_batches

    chunks = [chunk for index, text in enumerate(texts) for chunk in encoder.chunks(index, encoder.tokenize(text)[0])]
    batches = [padded_batch(batch, encoder.pad_token_id) for batch in token_budget_batches(chunks, encoder.batch_tokens)]
    runner = encoder.runner
    options = ort_options(threads)
    if runner.source != runner.graph:  # the saved optimised graph: loaded with the optimisers off, as the runner does
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.enable_profiling = True
    options.profile_file_prefix = str(Path(tempfile.mkdtemp()) / "ort")
    session = ort.InferenceSession(str(runner.source), options, providers=["CPUExecutionProvider"])
    for input_ids, attention_mask in batches:
        session.run(None, {"input_ids": input_ids, "attention_mask": attention_mask})
    trace = Path(session.end_profiling())
    kernel_us: dict[str, float] = {}
    for event in json.loads(trace.read_text()):
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
            kernel_us[event["args"]["op_name"]] = kernel_us.get(event["args"]["op_name"], 0.0) + event["dur"]
    trace.unlink()
    total = sum(kernel_us.values())
    real = sum(len(chunk.token_ids) for chunk in chunks)
    return {
        "sentences": len(texts),
        "padded_tokens": int(sum(ids.size for ids, _ in batches)),
        "real_tokens_with_bos": real,
        "kernel_ms": round(total / 1e3, 1),
        "share_by_op": {op: round(us / total, 4) for op, us in sorted(kernel_us.items(), key=lambda item: -item[1]) if us / total >= 0.003},
    }


def multiplied_weights(truncated_encoder: Encoder) -> int:
    """Weights the truncated graph multiplies per token: every linear of blocks 0..L-1, block L's v_proj."""
    from torch import nn

    from ner_os.encoder.truncated import decoder_of

    layer = truncated_encoder.layer
    blocks = decoder_of(truncated_encoder.runner.model).layers
    linears = [module for block in blocks[:layer] for module in block.modules() if isinstance(module, nn.Linear)]
    return sum(linear.weight.numel() for linear in linears) + blocks[layer].self_attn.v_proj.weight.numel()


def token_cosines(a, b) -> np.ndarray:
    return np.concatenate(
        [np.sum(x.vectors * y.vectors, 1) / (np.linalg.norm(x.vectors, axis=1) * np.linalg.norm(y.vectors, axis=1)) for x, y in zip(a, b) if len(x.vectors)]
    )


def r_precision_delta(fp32: Encoder, int8: Encoder, args) -> dict:
    """Macro R-Precision of raw vectors on the held-out train types, fp32 vs int8 (exact cosine ranking)."""
    from int8_quality import gold_span_report  # bench/int8_quality.py
    from ner_os.evaluation.corpus import eval_types, read_corpus
    from ner_os.evaluation.readers import read_type_names
    from ner_os.mentions.embedder import MentionEmbedder
    from ner_os.training import choose_dev_types

    documents = read_corpus(args.data / "inter_train_slice2.txt", limit=args.rp_sentences, seed=0)
    documents = [document for document in documents if document.gold]
    counts: dict[str, int] = {}
    for document in documents:
        for mention in document.gold:
            counts[mention.label] = counts.get(mention.label, 0) + 1
    dev_types = set(choose_dev_types(counts, seed=0))
    types = [item for item in eval_types(documents, read_type_names(args.data / "type_names.json")) if item.label in dev_types]
    scores = {}
    for name, encoder in (("fp32", fp32), ("int8", int8)):
        scores[name] = gold_span_report(MentionEmbedder(encoder, None), documents, types).macro["r_precision"]
    return {
        "fp32": round(scores["fp32"], 4),
        "int8": round(scores["int8"], 4),
        "delta": round(scores["int8"] - scores["fp32"], 4),
        "types": sorted(item.label for item in types),
        "documents": len(documents),
        "corpus": "inter_train_slice2.txt (held-out train types chosen by ner_os.training.data.choose_dev_types, seed 0)",
    }


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


if __name__ == "__main__":
    main()
