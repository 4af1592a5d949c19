"""The truncated decoder: embedding, blocks 0..L-1, then block L's input norm and ``v_proj``.

Nothing after ``layers[L].self_attn.v_proj`` runs (no attention mixing of block L, no later block,
no final norm, no LM head). The module re-implements only the decoder loop around the model's own
sub-modules; what differs between architectures is handled here:

- embedding scale: Gemma 1/2 multiply the embedding by sqrt(hidden_size) in the model's forward
  (Gemma 3's embedding module scales by itself);
- rotary embeddings: one table, or Gemma 3's global and local tables, computed from positions;
- masks: causal + padding, and a sliding window for the layers whose type says so (Gemma 2/3,
  Qwen2 with sliding layers, Mistral's model-wide window). Padding is on the right, so every query
  row keeps BOS and positions are 0..n-1 for real tokens.

The masks are built with tensor operations only, so the same module traces to ONNX with dynamic
batch and sequence axes.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ner_os.errors import ConfigError

SCALES_EMBEDDING_IN_MODEL = {"gemma", "gemma2"}  # Gemma 3's Gemma3TextScaledWordEmbedding scales itself
SLIDING = "sliding_attention"


def decoder_of(model: nn.Module) -> nn.Module:
    """The decoder stack (``model.model``) of a *ForCausalLM, or the model itself if it is one."""
    inner = getattr(model, "model", model)
    if hasattr(inner, "language_model"):  # multimodal wrappers (Gemma 3 4B+): the text decoder
        inner = inner.language_model
    if not hasattr(inner, "layers") or not hasattr(inner, "embed_tokens"):
        raise ConfigError(f"{type(model).__name__}: not a decoder with .layers and .embed_tokens")
    return inner


def text_config(model: nn.Module):
    config = model.config
    return getattr(config, "text_config", None) or config


def value_projection(model: nn.Module, layer: int) -> nn.Module:
    """``layers[layer].self_attn.v_proj``, with a clear error when the layer is out of range."""
    layers = decoder_of(model).layers
    if not 0 <= layer < len(layers):
        raise ConfigError(f"layer {layer} is out of range: the model has {len(layers)} blocks (0..{len(layers) - 1})")
    attention = layers[layer].self_attn
    if not hasattr(attention, "v_proj"):
        raise ConfigError(f"{type(attention).__name__} has no v_proj: architecture not supported")
    return attention.v_proj


def layer_attention_types(config, count: int) -> list[str]:
    types = getattr(config, "layer_types", None)
    if types:
        return list(types[:count])
    model_wide = SLIDING if getattr(config, "sliding_window", None) else "full_attention"
    return [model_wide] * count


def attention_bias(attention_mask: torch.Tensor, dtype: torch.dtype, window: int | None) -> torch.Tensor:
    """Additive mask [batch, 1, seq, seq]: 0 where query q may attend key k, the dtype's minimum elsewhere."""
    positions = torch.arange(attention_mask.shape[1], device=attention_mask.device)
    query, key = positions[:, None], positions[None, :]
    allowed = key <= query
    if window is not None:
        allowed = allowed & (query - key < window)
    allowed = allowed[None, None, :, :] & attention_mask[:, None, None, :].bool()
    zero = torch.zeros((), dtype=dtype, device=attention_mask.device)
    blocked = torch.full((), torch.finfo(dtype).min, dtype=dtype, device=attention_mask.device)
    return torch.where(allowed, zero, blocked)


class TruncatedDecoder(nn.Module):
    """Value vectors of the blocks ``layers`` from one pass that stops at the deepest one's v_proj.

    ``forward(input_ids, attention_mask)`` returns one tensor [batch, seq, d_v] per requested layer
    (a single tensor when one layer was requested).
    """

    def __init__(self, model: nn.Module, layers: list[int] | int):
        super().__init__()
        layers = [layers] if isinstance(layers, int) else sorted(set(layers))
        decoder = decoder_of(model)
        config = text_config(model)
        self.config = model.config  # the ONNX exporter sets config.return_dict on the module it exports
        self.read_layers = layers
        deepest = layers[-1]
        for layer in layers:
            value_projection(model, layer)  # range and architecture checks
        self.embed_tokens = decoder.embed_tokens
        self.embed_scale = math.sqrt(config.hidden_size) if config.model_type in SCALES_EMBEDDING_IN_MODEL else None
        self.blocks = nn.ModuleList(decoder.layers[:deepest])
        self.norms = nn.ModuleList(decoder.layers[layer].input_layernorm for layer in layers)
        self.v_projs = nn.ModuleList(decoder.layers[layer].self_attn.v_proj for layer in layers)
        self.rotary_emb = decoder.rotary_emb
        self.rotary_emb_local = getattr(decoder, "rotary_emb_local", None)  # Gemma 3: local-attention RoPE
        self.attention_types = layer_attention_types(config, deepest)
        self.sliding_window = getattr(config, "sliding_window", None)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor):
        hidden = self.embed_tokens(input_ids)
        if self.embed_scale is not None:
            hidden = hidden * torch.tensor(self.embed_scale, dtype=hidden.dtype)
        position_ids = torch.arange(input_ids.shape[1], device=input_ids.device).unsqueeze(0)
        masks = {
            kind: attention_bias(attention_mask, hidden.dtype, self.sliding_window if kind == SLIDING else None)
            for kind in set(self.attention_types)
        }
        rope = self.rotary_emb(hidden, position_ids)
        rope_kwargs = {"position_embeddings": rope}
        if self.rotary_emb_local is not None:
            rope_local = self.rotary_emb_local(hidden, position_ids)
            rope_kwargs = {"position_embeddings_global": rope, "position_embeddings_local": rope_local}
        values = []
        next_read = 0
        for index in range(self.read_layers[-1] + 1):
            if index == self.read_layers[next_read]:
                values.append(self.v_projs[next_read](self.norms[next_read](hidden)))
                next_read += 1
                if next_read == len(self.read_layers):
                    break
            output = self.blocks[index](
                hidden, attention_mask=masks[self.attention_types[index]], position_ids=position_ids, **rope_kwargs
            )
            hidden = output[0] if isinstance(output, tuple) else output
        return values[0] if len(values) == 1 else tuple(values)
