"""SmoothQuant-style rescaling that makes a decoder friendlier to int8 activations, exactly.

Dynamic int8 in ONNX Runtime quantizes each MatMul's activations with one scale per tensor. Gemma
(and most LLMs) have a few input channels with activations 20-600x the mean, so that one scale
wastes the int8 range on them and the value vectors drift (cosine to fp32 ~0.9). For each linear
input we divide channel j by s_j and multiply the weights' input column j by s_j
(s_j = max|x_j|^alpha / max|W_:,j|^(1-alpha), Xiao et al. 2023), folding 1/s_j into the operation
that produces the input, so the fp32 function is unchanged:

- q/k/v and gate/up inputs come from an RMSNorm: its weight absorbs 1/s;
- down_proj's input is act(gate) * up: up_proj's output rows absorb 1/s;
- o_proj's input is attention over values: v_proj's output rows absorb 1/s, shared by the query
  heads of a KV group (blocks before the read layer only: the read layer's v_proj is the output).
"""

from __future__ import annotations

import torch
from torch import nn

from ner_os.encoder.truncated import TruncatedDecoder, decoder_of, text_config


def smooth_for_int8(model: nn.Module, layer: int, calibration: list[list[int]], alpha: float = 0.5) -> None:
    """Rescale blocks 0..layer of ``model`` in place; ``calibration`` holds token-id lists (BOS first)."""
    decoder = decoder_of(model)
    blocks = list(decoder.layers[: layer + 1])
    amax = _input_channel_maxima(model, layer, blocks, calibration)
    for index, block in enumerate(blocks):
        attention = block.self_attn
        qkv = [attention.v_proj] if index == layer else [attention.q_proj, attention.k_proj, attention.v_proj]
        _smooth_after_norm(block.input_layernorm, qkv, amax[id(attention.v_proj)], alpha)
        if index == layer:
            break
        mlp = block.mlp
        mlp_norm = getattr(block, "pre_feedforward_layernorm", None) or block.post_attention_layernorm
        _smooth_after_norm(mlp_norm, [mlp.gate_proj, mlp.up_proj], amax[id(mlp.up_proj)], alpha)
        scale = _scales(amax[id(mlp.down_proj)], [mlp.down_proj], alpha)
        _scale_output_rows(mlp.up_proj, 1 / scale)
        _scale_input_columns(mlp.down_proj, scale)
        _smooth_values(attention, amax[id(attention.o_proj)], text_config(model), alpha)


def _input_channel_maxima(model, layer, blocks, calibration) -> dict[int, torch.Tensor]:
    linears = [module for block in blocks for module in block.modules() if isinstance(module, nn.Linear)]
    amax: dict[int, torch.Tensor] = {}

    def record(module, args, _output):
        seen = args[0].detach().abs().flatten(0, -2).amax(0).float()
        amax[id(module)] = torch.maximum(amax[id(module)], seen) if id(module) in amax else seen

    handles = [linear.register_forward_hook(record) for linear in linears]
    truncated = TruncatedDecoder(model, layer)
    try:
        with torch.inference_mode():
            for ids in calibration:
                tensor = torch.tensor([ids])
                truncated(tensor, torch.ones_like(tensor))
    finally:
        for handle in handles:
            handle.remove()
    return amax


def _scales(activation_max: torch.Tensor, weights: list[nn.Linear], alpha: float) -> torch.Tensor:
    weight_max = torch.stack([linear.weight.detach().abs().amax(0).float() for linear in weights]).amax(0)
    scale = activation_max.clamp(min=1e-5) ** alpha / weight_max.clamp(min=1e-5) ** (1 - alpha)
    return scale.clamp(min=1e-5)


def _smooth_after_norm(norm: nn.Module, linears: list[nn.Linear], activation_max, alpha: float) -> None:
    scale = _scales(activation_max, linears, alpha)
    with torch.no_grad():
        if type(norm).__name__.startswith("Gemma"):  # Gemma's RMSNorm multiplies by (1 + weight)
            norm.weight.copy_((1 + norm.weight.float()) / scale - 1)
        else:
            norm.weight.div_(scale.to(norm.weight.dtype))
    for linear in linears:
        _scale_input_columns(linear, scale)


def _smooth_values(attention: nn.Module, activation_max, config, alpha: float) -> None:
    """o_proj's input channel (head h, dim d) = attention over v channel (group(h), d): scale per (group, d)."""
    heads = config.num_attention_heads
    groups = config.num_key_value_heads
    head_dim = attention.o_proj.in_features // heads
    per_head_act = activation_max.view(groups, heads // groups, head_dim).amax(1)
    weight_max = attention.o_proj.weight.detach().abs().amax(0).float().view(groups, heads // groups, head_dim).amax(1)
    scale = (per_head_act.clamp(min=1e-5) ** alpha / weight_max.clamp(min=1e-5) ** (1 - alpha)).clamp(min=1e-5)
    _scale_output_rows(attention.v_proj, 1 / scale.flatten())
    column_scale = scale[:, None, :].expand(groups, heads // groups, head_dim).flatten()
    _scale_input_columns(attention.o_proj, column_scale)


def _scale_input_columns(linear: nn.Linear, scale: torch.Tensor) -> None:
    with torch.no_grad():
        linear.weight.mul_(scale.to(linear.weight.dtype)[None, :])


def _scale_output_rows(linear: nn.Linear, scale: torch.Tensor) -> None:
    with torch.no_grad():
        linear.weight.mul_(scale.to(linear.weight.dtype)[:, None])
        if linear.bias is not None:
            linear.bias.mul_(scale.to(linear.bias.dtype))
