"""Training the head: data split, cached value vectors, the losses, determinism, the exact metric, the CLI."""

import json
import re
import zlib
from dataclasses import replace

import numpy as np
import pytest
from click.testing import CliRunner

import ner_os.training as training
import ner_os.training.fit as fit
import ner_os.training.run as run
from ner_os.config import Settings
from ner_os.errors import ConfigError
from ner_os.head import ProjectionHead
from ner_os.mentions.cache import MENTION_VECTORS, VectorCache
from ner_os.training import (
    UNLABELLED, LabelledText, MentionVectors, RetrievalTask, TrainConfig, TrainingData, choose_dev_types,
    confusable_pairs, mention_vectors, split_sentences, train_head,
)
from ner_os.training.vectors import dataset_content

pytestmark = pytest.mark.unit

D_V = 12
IDENTITY = {"profile": "fake", "model": "fake-model", "layer": 2, "d_v": D_V}


# ---------------------------------------------------------------- a tiny encoder with several layers


class LayeredText(dict):
    def __init__(self, vectors, offsets):
        super().__init__(vectors)
        self.offsets = offsets


class FakeLayeredEncoder:
    """Whitespace tokens; a token's vector at a layer is a fixed random function of (word, layer).

    Words named ``<type>N`` carry their type's direction, so mentions of a type share a signal.
    """

    def __init__(self, calls):
        self.calls = calls

    @staticmethod
    def vector(word, layer):
        rng = np.random.default_rng(zlib.crc32(f"{layer}:{word}".encode()))
        base = rng.normal(size=D_V)
        kind = re.sub(r"\d+$", "", word)
        signal = np.random.default_rng(zlib.crc32(f"type:{kind}".encode())).normal(size=D_V)
        return (0.5 * base + signal).astype(np.float32)

    def encode_layers(self, texts, layers):
        self.calls.append((list(texts), list(layers)))
        out = []
        for text in texts:
            offsets = np.asarray([(m.start(), m.end()) for m in re.finditer(r"\S+", text)], dtype=np.int32)
            words = [text[s:e] for s, e in offsets]
            out.append(LayeredText({layer: np.stack([self.vector(w, layer) for w in words]) for layer in layers},
                                   offsets))
        return out


def factory(calls):
    def make(layers):
        calls.append(("load", list(layers)))
        return FakeLayeredEncoder(calls)
    return make


# ---------------------------------------------------------------- data split


COUNTS = {"person_actor": 50, "person_athlete": 10, "person_soldier": 5, "location_GPE": 90, "location_island": 8,
          "art_film": 20}


def test_dev_types_one_per_category_never_its_largest():
    dev = choose_dev_types(COUNTS, seed=1)
    assert len(dev) == 2  # art has a single type: it stays in training
    assert {d.split("_")[0] for d in dev} == {"person", "location"}
    assert "person_actor" not in dev and "location_GPE" not in dev
    assert choose_dev_types(COUNTS, seed=1) == dev


def sentence(*labels):
    return LabelledText(" ".join(f"w{i}" for i in range(len(labels))),
                        tuple((3 * i, 3 * i + 2, label) for i, label in enumerate(labels)))


def test_split_keeps_dev_types_out_of_training_sentences():
    sentences = [sentence("a_x"), sentence("a_y", "a_x"), sentence("a_x", "b_z")] * 10
    split = split_sentences(sentences, ["a_y"], n_train=15, n_dev=5, seed=0)
    assert len(split.train) == 15 and len(split.dev) == 5
    assert not set(split.train) & set(split.dev)
    assert all(any(label == "a_y" for *_, label in sentences[i].spans) for i in split.dev)
    assert all(all(label != "a_y" for *_, label in sentences[i].spans) for i in split.train)
    assert split_sentences(sentences, ["a_y"], 15, 5, seed=0) == split
    assert split_sentences(sentences, ["a_y"], 15, 5, seed=1) != split


# ---------------------------------------------------------------- cached value vectors


def texts_with_spans():
    return [LabelledText("the actor1 met athlete2 today", ((4, 10, "person_actor"), (15, 23, "person_athlete"))),
            LabelledText("no mentions here", ()),
            LabelledText("island3", ((0, 7, None),))]


def fake_cache(root, profile="fake"):
    return VectorCache(root, MENTION_VECTORS, {"profile": profile})


def test_cache_reads_each_span_last_token_at_every_layer(tmp_path):
    calls = []
    mentions = mention_vectors(fake_cache(tmp_path), texts_with_spans(), [1, 3], factory(calls))
    assert calls[0] == ("load", [1, 3])
    assert calls[1][0] == ["the actor1 met athlete2 today", "island3"]  # longest first, texts without spans skipped
    np.testing.assert_array_equal(mentions.sentence_ids, [0, 0, 2])
    assert mentions.label_of() == ["person_actor", "person_athlete", None]
    assert mentions.labels[2] == UNLABELLED
    for layer in (1, 3):
        expected = np.stack([FakeLayeredEncoder.vector(w, layer) for w in ("actor1", "athlete2", "island3")])
        np.testing.assert_array_equal(mentions.vectors[layer], expected)


def test_mention_vectors_by_label_and_split_into_gold_and_detected(tmp_path):
    mentions = mention_vectors(fake_cache(tmp_path), texts_with_spans(), [1], factory([]))
    np.testing.assert_array_equal(mentions.of_labels(1, ["person_athlete", "person_actor"]),
                                  mentions.vectors[1][[1, 0]])
    pools = mentions.gold_and_detected()
    assert pools["gold"].label_of() == ["person_actor", "person_athlete"]
    assert pools["detected"].label_of() == [None]
    np.testing.assert_array_equal(pools["detected"].vectors[1], mentions.vectors[1][[2]])


def test_cache_hits_never_encode_and_misses_encode_only_missing_layers(tmp_path):
    calls = []
    cache = fake_cache(tmp_path)
    mention_vectors(cache, texts_with_spans(), [1, 3], factory(calls))
    calls.clear()
    again = mention_vectors(cache, texts_with_spans(), [3], factory(calls))
    assert calls == [] and list(again.vectors) == [3]
    mention_vectors(cache, texts_with_spans(), [1, 5], factory(calls))
    assert calls[0] == ("load", [5])
    entry = cache.entry(dataset_content(texts_with_spans()))
    meta = json.loads((entry / "meta.json").read_text())
    assert [p["layers"] for p in meta["passes"]] == [[1, 3], [5]]
    other_spans = [replace(texts_with_spans()[0], spans=((4, 10, "person_actor"),))]
    assert cache.entry(dataset_content(other_spans)) != entry
    assert fake_cache(tmp_path, "other").entry(dataset_content(texts_with_spans())) != entry


def test_training_vectors_are_fp32_whatever_the_loaders_default_and_other_numerics_key_apart(tmp_path, monkeypatch):
    from ner_os.training.vectors import TRAINING_DTYPE, model_key

    settings = Settings.resolve(env={}, cache_dir=str(tmp_path))
    assert settings.numerics == "int8" and TRAINING_DTYPE == "fp32"
    assert model_key(settings) == {"profile": "gemma3-270m", "model": None, "weights_dtype": "fp32"}  # older caches hit
    assert model_key(settings, "int8") == {**model_key(settings), "numerics": "int8:2"}
    loaded = []
    monkeypatch.setattr(run.Encoder, "load", staticmethod(lambda **options: loaded.append(options)))
    run.encoder_factory(settings, backend="onnx")([15])
    run.encoder_factory(settings, backend="onnx", dtype="int8")([15])
    assert [options["dtype"] for options in loaded] == ["fp32", "int8"]


# ---------------------------------------------------------------- training


def synthetic(n_types=14, per_type=40, seed=0, noise=0.3):
    """Mentions = [A c_t + noise, 0] and anchors = [0, B c_t] with random A, B: raw cosine cannot
    match them (disjoint coordinates), but a map learned on some types carries over to new types."""
    rng = np.random.default_rng(seed)
    half = D_V // 2
    a, b = rng.normal(size=(half, half)), rng.normal(size=(half, half))
    centres = rng.normal(size=(n_types, half))
    labels = np.repeat(np.arange(n_types), per_type)
    mentions = np.zeros((len(labels), D_V))
    mentions[:, :half] = centres[labels] @ a.T + noise * rng.normal(size=(len(labels), half))
    anchors = np.zeros((n_types, D_V))
    anchors[:, half:] = centres @ b.T
    return mentions.astype(np.float32), labels, anchors.astype(np.float32)


def held_out_r_precision(head, mentions, labels, anchors, types):
    """Each mention its own document; R-Precision of the unseen types' anchors over their mentions.

    ``head`` None: raw vectors."""
    rows = np.isin(labels, types)
    n = int(rows.sum())
    pool = MentionVectors(np.arange(n), np.zeros(n), np.zeros(n), labels[rows], [], {0: mentions[rows]})
    queries = {str(t): training.project(head, anchors[t][None], "query")[0] for t in types}
    task = RetrievalTask(pool, {str(t): np.flatnonzero(labels[rows] == t) for t in types})
    return task.evaluate(0, queries, lambda x: training.project(head, x)).macro["r_precision"]


SMALL = TrainConfig(hidden_dim=32, out_dim=16, epochs=25, mentions_per_type=16, hard_pairs_per_type=2, lr=3e-3,
                    temperature=0.1)


@pytest.mark.parametrize("loss, skip_weight, centering", [("infonce", 0.5, "per-role"), ("infonce", 0.0, "none"),
                                                         ("triplet", 0.0, "none")])
def test_head_generalises_to_types_it_never_saw(loss, skip_weight, centering):
    mentions, labels, anchors = synthetic()
    train_types, unseen = np.arange(10), np.arange(10, 14)
    rows = np.isin(labels, train_types)
    data = TrainingData(mentions[rows], labels[rows], anchors[train_types], [f"t{t}" for t in train_types])
    result = train_head(data, replace(SMALL, loss=loss, skip_weight=skip_weight, centering=centering), IDENTITY, progress=False)
    raw = held_out_r_precision(None, mentions, labels, anchors, unseen)
    trained = held_out_r_precision(result.head, mentions, labels, anchors, unseen)
    assert trained > max(0.8, raw + 0.3), (raw, trained)
    assert result.history[-1]["loss"] < result.history[0]["loss"]


def test_training_is_deterministic_for_a_seed():
    mentions, labels, anchors = synthetic(n_types=4, per_type=20)
    data = TrainingData(mentions, labels, anchors, ["a", "b", "c", "d"])
    config = replace(SMALL, epochs=3)
    first = train_head(data, config, IDENTITY, progress=False).head
    second = train_head(data, config, IDENTITY, progress=False).head
    other = train_head(data, replace(config, seed=1), IDENTITY, progress=False).head
    for name, array in first.weights.items():
        np.testing.assert_array_equal(array, second.weights[name])
    assert not np.array_equal(first.weights["hidden.weight"], other.weights["hidden.weight"])


@pytest.mark.parametrize("input_norm", ["rms", "none"])
@pytest.mark.parametrize("centering", ["per-role", "none"])
@pytest.mark.parametrize("skip_weight", [0.0, 0.5])
def test_numpy_head_equals_the_torch_module_in_eval_mode(input_norm, centering, skip_weight):
    import torch

    config = replace(SMALL, input_norm=input_norm, centering=centering, skip_weight=skip_weight)
    module = fit._head_module(D_V, config)
    rng = np.random.default_rng(0)
    data = TrainingData(rng.normal(3, 1, size=(20, D_V)).astype(np.float32), np.zeros(20),
                        rng.normal(-2, 1, size=(4, D_V)).astype(np.float32), [])
    head = fit._to_head(module, config, IDENTITY, data, {})
    x = rng.normal(size=(5, D_V)).astype(np.float32) * 7
    module.eval()
    for role, offset in (("mention", data.mentions.mean(0)), ("query", data.anchors.mean(0))):
        offset = offset if centering == "per-role" else 0
        with torch.no_grad():
            expected = torch.nn.functional.normalize(module(torch.from_numpy(x - offset)), dim=-1).numpy()
        assert head.out_dim == expected.shape[1] == 16 + (D_V if skip_weight else 0)
        np.testing.assert_allclose(head.project(x, role), expected, atol=1e-5)


def test_a_query_map_without_phrase_pairs_is_refused_not_skipped():
    mentions, labels, anchors = synthetic(n_types=2, per_type=5)
    data = TrainingData(mentions, labels, anchors, ["a", "b"])
    with pytest.raises(ConfigError, match="query map"):
        train_head(data, replace(SMALL, query_map_ridge=0.1, epochs=1), IDENTITY, progress=False)


def test_confusable_pairs_point_to_the_nearest_wrong_type_mention():
    vectors = np.array([[1.0, 0.0], [0.99, 0.1], [0.0, 1.0], [0.1, 0.99], [0.95, -0.2]])
    labels = np.array([0, 0, 1, 1, 1])
    pairs = {tuple(p) for p in confusable_pairs(vectors, labels, neighbours=1).tolist()}
    assert (4, 0) in pairs  # type 1 mention sitting among type 0
    assert (0, 1) not in pairs  # same type: not a negative
    assert all(labels[a] != labels[b] for a, b in pairs)


def test_bad_config_values_are_refused():
    with pytest.raises(ConfigError, match="loss 'hinge'"):
        TrainConfig(loss="hinge")
    with pytest.raises(ConfigError, match="hard_share"):
        TrainConfig(hard_share=2)
    with pytest.raises(ConfigError, match="centering 'mean': expected one of per-role, none"):
        TrainConfig(centering="mean")
    with pytest.raises(ConfigError, match="skip_weight"):
        TrainConfig(skip_weight=1)


# ---------------------------------------------------------------- end to end on a tiny Few-NERD folder


def write_tiny_fewnerd(folder, seed=0):
    rng = np.random.default_rng(seed)
    types = ["person_actor", "person_athlete", "person_soldier", "location_GPE", "location_island",
             "location_mountain"]
    folder.mkdir()
    names = {t: t.split("_")[1] for t in types}
    (folder / "type_names.json").write_text(json.dumps(names))
    for file_name in training.TRAIN_FILES:
        lines = []
        for _ in range(60):
            chosen = rng.choice(types, size=2, replace=False)
            for t in chosen:
                lines += ["the\tO", f"{t.split('_')[1]}{rng.integers(99)}\tB-{t}", "said\tO"]
            lines.append("")
        (folder / file_name).write_text("\n".join(lines) + "\n")
    return folder


def test_train_on_fewnerd_holds_out_dev_types_and_records_provenance(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(run, "encoder_factory", lambda settings, *how: factory(calls))
    data = write_tiny_fewnerd(tmp_path / "fewnerd")
    settings = Settings(cache_dir=str(tmp_path / "cache"), layer=2)
    plan = training.DataPlan(n_train=40, n_dev=30, dev_seed=3)
    result = training.train_on_fewnerd(settings, data, replace(SMALL, epochs=2), hold_out_dev=True, plan=plan,
                                       progress=False)
    manifest = result.head.manifest
    dev_types = manifest["training"]["dev_types"]
    assert len(dev_types) == 2 and not set(dev_types) & set(manifest["training"]["types"])
    assert manifest["encoder"]["layer"] == 2 and manifest["encoder"]["d_v"] == D_V
    assert set(manifest["training"]["data_files"]) == {*training.TRAIN_FILES, "type_names.json"}
    assert {"dev_only", "dev_all", "dev"} <= set(result.history[-1])
    loads = [c for c in calls if c[0] == "load"]
    # sentences, then descriptions; cached from now on
    assert loads == [("load", [2]), ("load", [2])]
    assert result.head.maps == {} and set(result.head.offsets) == {"mention", "query"}
    calls.clear()
    mapped = training.train_on_fewnerd(settings, data, replace(SMALL, epochs=1, query_map_ridge=0.1), plan=plan,
                                       progress=False)
    assert [c for c in calls if c[0] == "load"] == [("load", [2])]  # only the mentions read alone, for the map
    assert set(mapped.head.maps) == {"query"}
    calls.clear()
    final = training.train_on_fewnerd(settings, data, replace(SMALL, epochs=1), plan=plan, progress=False)
    assert calls == []
    assert len(final.head.manifest["training"]["types"]) == 6


def test_centroid_queries_find_a_type_its_description_misses(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(run, "encoder_factory", lambda settings, *how: factory(calls))
    data = write_tiny_fewnerd(tmp_path / "fewnerd")
    names = json.loads((data / "type_names.json").read_text())
    (data / "type_names.json").write_text(json.dumps({label: f"nothing{i}" for i, label in enumerate(names)}))
    settings = Settings(cache_dir=str(tmp_path / "cache"), layer=2)
    train_set = training.load_train_set(settings, data, [2], training.DataPlan(n_train=40, n_dev=30, dev_seed=3))
    by_description = train_set.dev_evaluator(2)(None)["dev"]
    by_centroid = train_set.dev_evaluator(2, centroid_queries=True)(None)["dev"]
    assert by_centroid > 0.9 and by_centroid > by_description + 0.2


def test_cli_train_writes_a_loadable_head(tmp_path, monkeypatch):
    from ner_os.cli import cli

    calls = []
    monkeypatch.setattr(run, "encoder_factory", lambda settings, *how: factory(calls))
    data = write_tiny_fewnerd(tmp_path / "fewnerd")
    monkeypatch.setenv("NER_OS_CACHE_DIR", str(tmp_path / "cache"))
    out = tmp_path / "head"
    result = CliRunner().invoke(cli, ["train", "--data", str(data), "--layer", "1", "--out", str(out),
                                      "--epochs", "1", "--hidden-dim", "16", "--out-dim", "8",
                                      "--train-sentences", "40", "--dev-sentences", "20", "--hold-out-dev"])
    assert result.exit_code == 0, result.output
    assert f"saved to {out}" in result.output and "dev " in result.output
    head = ProjectionHead.load(out)
    assert (head.in_dim, head.hidden_dim, head.out_dim) == (D_V, 16, 8 + D_V)  # MLP output + the skip
    assert head.manifest["encoder"]["layer"] == 1


def test_cli_train_reports_a_missing_type_names_file_on_one_line(tmp_path, monkeypatch):
    from ner_os.cli import cli

    monkeypatch.setattr(run, "encoder_factory", lambda settings, *how: factory([]))
    data = write_tiny_fewnerd(tmp_path / "fewnerd")
    (data / "type_names.json").unlink()
    result = CliRunner().invoke(cli, ["train", "--data", str(data)])
    assert result.exit_code == 2
    assert result.output.strip().startswith("Error:") and "type_names.json: not found" in result.output


def test_retrieval_task_ranks_documents_by_their_best_mention():
    vectors = np.array([[0.0, 1.0], [1.0, 0.1], [0.2, 1.0], [0.9, 0.5]], dtype=np.float32)
    pool = MentionVectors(np.array([7, 7, 3, 5]), np.zeros(4), np.zeros(4), np.zeros(4, dtype=np.int64), [],
                          {4: vectors})
    report = RetrievalTask(pool, {"x": np.array([7]), "y": np.array([3, 5])}).evaluate(
        4, {"x": np.array([1.0, 0.0]), "y": np.array([0.0, 1.0])})
    assert report.per_type["x"].r_precision == 1.0  # doc 7 wins through its second mention
    assert report.per_type["y"].r_precision == 0.5  # doc 7's first mention beats doc 5's only one
