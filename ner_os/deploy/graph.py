"""The type-vector graph: token ids -> value vectors of block L -> the last real token -> the head -> a unit vector.

Composed onto the exported value-vector graph (:mod:`ner_os.encoder.export`) with plain ONNX ops, no
re-tracing. What ML Commons 2.19 runs decides its shape (docs/cluster-embedding.md):

- inputs ``input_ids`` and ``attention_mask`` (int64 ``[batch, sequence]``), fed by name;
- the first output is read, and ML Commons' ONNX path has no last-token pooling: the graph outputs
  the finished unit vector as ``[batch, 1, dim]``, registered with ``pooling_mode: cls`` (row 0)
  and ``normalize_result: false``;
- ONNX Runtime 1.16.3 is bundled: opset <= 19 and IR version <= 9; one file, so no external data
  (a graph under 2 GB).

The head part is :meth:`ner_os.head.ProjectionHead.project` with ``role="query"``: the per-role
offset and map, the optional rms norm, ``Linear -> SiLU -> Linear``, L2 norm, and the skip concat
``[sqrt(w) * l2(x), sqrt(1 - w) * projected]``. Without a head the raw value vector, L2-normalised.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ner_os.errors import ConfigError
from ner_os.head import MAP_NAMES, OFFSET_NAMES, ProjectionHead

INPUTS = ("input_ids", "attention_mask")
OUTPUT = "sentence_embedding"
MAX_OPSET = 19  # ONNX Runtime 1.16.3, bundled with ML Commons 2.19
IR_VERSION = 8  # <= 9 for that runtime; 8 is what opset 18 needs at least
MAX_GRAPH_BYTES = 2**31 - 1  # protobuf's limit: ML Commons reads one .onnx file, no external data
EPSILON = 1e-12  # as in ner_os.head (l2_normalise, the rms norm)
PREFIX = "ner_os_type_vector/"


class _Builder:
    """Nodes and initializers appended to a graph, each name under PREFIX."""

    def __init__(self, graph):
        self.graph = graph
        self.count = 0

    def name(self, hint: str) -> str:
        self.count += 1
        return f"{PREFIX}{hint}_{self.count}"

    def const(self, hint: str, value) -> str:
        from onnx import numpy_helper

        name = self.name(hint)
        self.graph.initializer.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def op(self, op_type: str, inputs: list[str], hint: str | None = None, **attributes) -> str:
        from onnx import helper

        out = self.name(hint or op_type.lower())
        self.graph.node.append(helper.make_node(op_type, inputs, [out], name=out, **attributes))
        return out

    def l2_normalise(self, x: str) -> str:
        """x / max(||x||, EPSILON) over the last axis (as ner_os.head.l2_normalise)."""
        squares = self.op("ReduceSum", [self.op("Mul", [x, x]), self.const("last_axis", np.array([-1], np.int64))],
                          keepdims=1)
        norm = self.op("Max", [self.op("Sqrt", [squares]), self.const("epsilon", np.float32(EPSILON))])
        return self.op("Div", [x, norm])


def last_token(builder: _Builder, values: str) -> str:
    """``values[b, sum(attention_mask[b]) - 1, :]`` as ``[batch, 1, d_v]``: the last real token of each row."""
    lengths = builder.op("ReduceSum", [INPUTS[1], builder.const("seq_axis", np.array([1], np.int64))], keepdims=1)
    last = builder.op("Sub", [lengths, builder.const("one", np.array(1, np.int64))])  # [batch, 1]
    index = builder.op("Unsqueeze", [last, builder.const("feature_axis", np.array([2], np.int64))])  # [batch, 1, 1]
    # Expand broadcasts both ways: [batch, 1, 1] with [1, 1, d_v] -> [batch, 1, d_v]
    width = builder.op("Slice", [builder.op("Shape", [values]), builder.const("two", np.array([2], np.int64)),
                                 builder.const("three", np.array([3], np.int64))])
    shape = builder.op("Concat", [builder.const("ones", np.array([1, 1], np.int64)), width], axis=0)
    return builder.op("GatherElements", [values, builder.op("Expand", [index, shape])], axis=1)


def head_ops(builder: _Builder, x: str, head: ProjectionHead | None) -> str:
    """:meth:`ProjectionHead.project` (role ``query``) on ``x`` [..., d_v], or L2 norm without a head."""
    if head is None:
        return builder.l2_normalise(x)
    tensors = head.input_tensors
    if OFFSET_NAMES["query"] in tensors:
        x = builder.op("Sub", [x, builder.const("offset_query", tensors[OFFSET_NAMES["query"]])])
    if MAP_NAMES["query"] in tensors:
        x = builder.op("MatMul", [x, builder.const("map_query", tensors[MAP_NAMES["query"]])])
    if head.input_norm == "rms":
        mean = builder.op("ReduceMean", [builder.op("Mul", [x, x]),
                                         builder.const("last_axis", np.array([-1], np.int64))], keepdims=1)
        rms = builder.op("Sqrt", [builder.op("Add", [mean, builder.const("epsilon", np.float32(EPSILON))])])
        x = builder.op("Div", [x, rms])
    weights = head.weights
    hidden = builder.op("Add", [builder.op("MatMul", [x, builder.const("hidden_wt", weights["hidden.weight"].T.copy())]),
                                builder.const("hidden_b", weights["hidden.bias"])])
    hidden = builder.op("Mul", [hidden, builder.op("Sigmoid", [hidden])], hint="silu")
    output = builder.op("Add", [builder.op("MatMul", [hidden, builder.const("output_wt", weights["output.weight"].T.copy())]),
                                builder.const("output_b", weights["output.bias"])])
    projected = builder.l2_normalise(output)
    if not head.skip_weight:
        return projected
    w = np.float32(head.skip_weight)
    skip = builder.op("Mul", [builder.l2_normalise(x), builder.const("skip_weight", np.sqrt(w))])
    mlp = builder.op("Mul", [projected, builder.const("mlp_weight", np.sqrt(np.float32(1) - w))])
    return builder.op("Concat", [skip, mlp], axis=-1)


def compose(model, head: ProjectionHead | None, value_output: str = "value_vectors"):
    """The value-vector ``model`` (an ``onnx.ModelProto``, changed in place) turned into the type-vector graph."""
    from onnx import TensorProto, helper

    graph = model.graph
    outputs = {output.name: output for output in graph.output}
    if value_output not in outputs or [i.name for i in graph.input][:2] != list(INPUTS):
        raise ConfigError(f"not an ner-os value-vector graph: inputs {[i.name for i in graph.input]}, "
                          f"outputs {sorted(outputs)} (wanted {', '.join(INPUTS)} -> {value_output})")
    d_v = outputs[value_output].type.tensor_type.shape.dim[-1].dim_value
    if head is not None and d_v and head.in_dim != d_v:
        raise ConfigError(f"the head reads {head.in_dim}-d value vectors but the graph gives {d_v}-d ones")
    builder = _Builder(graph)
    values = value_output
    if outputs[value_output].type.tensor_type.elem_type != TensorProto.FLOAT:  # an fp16 export
        values = builder.op("Cast", [values], to=TensorProto.FLOAT)
    vector = head_ops(builder, last_token(builder, values), head)
    graph.node.append(helper.make_node("Identity", [vector], [OUTPUT], name=PREFIX + OUTPUT))
    dim = head.out_dim if head is not None else d_v
    del graph.output[:]
    graph.output.append(helper.make_tensor_value_info(OUTPUT, TensorProto.FLOAT, ["batch_size", 1, dim]))
    opset = max((entry.version for entry in model.opset_import if entry.domain in ("", "ai.onnx")), default=0)
    if opset > MAX_OPSET or opset < 13:
        raise ConfigError(f"the export uses ONNX opset {opset}; ML Commons 2.19 (ONNX Runtime 1.16.3) runs "
                          f"opsets 13 to {MAX_OPSET}: re-export with `ner-os export --force` (opset 18)")
    model.ir_version = IR_VERSION
    return model


def build_type_vector_graph(export_dir: str | Path, head: ProjectionHead | None, out: str | Path,
                            graph_name: str = "model.onnx") -> Path:
    """Write the type-vector graph of the export in ``export_dir`` with ``head`` to ``out``; returns ``out``."""
    import onnx

    source = Path(export_dir) / graph_name
    if (source.parent / (source.name + "_data")).exists():
        raise ConfigError(f"{source} keeps its weights in external data (a graph over 2 GB): ML Commons reads one "
                          ".onnx file only; deploy a smaller dtype (--dtype fp16) or serve the model outside")
    model = compose(onnx.load(str(source)), head)
    size = model.ByteSize()
    if size > MAX_GRAPH_BYTES:
        raise ConfigError(f"the type-vector graph is {size / 2**30:.2f} GiB; ML Commons reads one .onnx file of at "
                          "most 2 GiB (no external data): deploy --dtype fp16")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(out))
    return out
