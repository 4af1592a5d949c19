"""``ner-os train --data FILE --types NAMES.json``: a head (and span detector) trained on a labelled corpus of one's own."""

import json
import re

import numpy as np
import pytest
from click.testing import CliRunner

import ner_os.training.corpus as corpus_training
from ner_os.cli import cli
from ner_os.client import train_on_corpus
from ner_os.config import Settings
from ner_os.digest import file_sha256
from ner_os.errors import ConfigError
from ner_os.head import ProjectionHead
from ner_os.spans.encoder_detector import EncoderSpanDetector
from ner_os.spans.registry import detector_from_settings, head_detector_directory
from ner_os.training.corpus import read_labelled_corpus, split_by_sentence
from test_training import D_V, factory

pytestmark = pytest.mark.unit

KINDS = {"ACT": "actor", "ISL": "island", "MTN": "mountain", "CAR": "car"}


def write_corpus(path, n_sentences=60, columns="bio", seed=0):
    """Sentences of filler words and two mentions each; a mention word is ``<kind>N`` (the fake encoder gives
    a kind's words a shared direction), tagged B- (and I- for a two-word mention)."""
    rng = np.random.default_rng(seed)
    lines = []
    for _ in range(n_sentences):
        for label in rng.choice(sorted(KINDS), size=2, replace=False):
            word = f"{KINDS[label]}{rng.integers(99)}"
            tokens = [("the", "O"), (word, f"B-{label}")]
            if rng.random() < 0.3:
                tokens.append((f"{KINDS[label]}{rng.integers(99)}", f"I-{label}"))
            tokens.append(("said", "O"))
            for token, tag in tokens:
                lines.append(f"{token}\t{tag}" if columns == "bio" else f"{token} NN _ {tag}")
        lines.append("")
    path.write_text("\n".join(lines) + "\n")
    return path


def write_types(path, labels=KINDS):
    path.write_text(json.dumps({label: KINDS[label] for label in labels}))
    return path


@pytest.fixture
def fake_encoder(monkeypatch, tmp_path):
    calls = []
    monkeypatch.setattr(corpus_training, "encoder_factory", lambda settings, backend="torch": factory(calls))
    monkeypatch.setenv("NER_OS_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("NER_OS_DATA_DIR", str(tmp_path / "data"))
    return calls


SMALL = ["--epochs", "2", "--hidden-dim", "16", "--out-dim", "8", "--layer", "2"]


def test_a_bio_corpus_trains_a_head_with_dev_figures_and_a_card(tmp_path, fake_encoder):
    data = write_corpus(tmp_path / "mine.bio")
    types = write_types(tmp_path / "names.json")
    out = tmp_path / "head"
    settings = Settings.resolve(layer=2)
    from ner_os.training import TrainConfig

    trained = train_on_corpus(settings, data, types, out=out, config=TrainConfig(epochs=2, hidden_dim=16, out_dim=8),
                              min_steps=10, progress=False)
    head = ProjectionHead.load(out)
    assert (head.in_dim, head.encoder["layer"]) == (D_V, 2)
    training = head.manifest["training"]
    assert training["types"] == sorted(KINDS)
    assert training["data_files"]["data"]["sha256"] == file_sha256(data)
    assert training["split"] == {"dev_share": 0.2, "dev_seed": 13, "train_sentences": 48, "dev_sentences": 12}
    assert training["config"]["epochs"] == 10  # 96 mentions make one step of 4 x 32: raised to min_steps
    figures = trained.training.dev["r_precision"]
    assert figures["trained"] > 0.9 and set(figures) == {"trained", "raw_vectors"}  # no shipped head at d_v 12
    card = (out / "MODEL_CARD.md").read_text()
    assert file_sha256(data) in card and "| ACT | actor |" in card and "R-Precision" in card
    assert trained.detector_path is None and head_detector_directory(Settings(head=str(out))) is None
    # the same corpus again reads the cached vectors: no encoder is loaded
    fake_encoder.clear()
    train_on_corpus(settings, data, types, out=out, config=TrainConfig(epochs=1, hidden_dim=16, out_dim=8),
                    min_steps=0, progress=False)
    assert fake_encoder == []


def test_cli_trains_head_and_span_detector_on_a_conll_file(tmp_path, fake_encoder, monkeypatch):
    data = write_corpus(tmp_path / "mine.conll", columns="conll")
    types = write_types(tmp_path / "names.json")
    out = tmp_path / "head"
    args = ["train", "--data", str(data), "--types", str(types), "--format", "conll", "--spans", "--out", str(out),
            "--dev-share", "0.25", *SMALL]
    monkeypatch.setattr("sys.argv", ["ner-os", *args])  # what the card records
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert f"saved to {out}" in result.output and "dev R-Precision" in result.output
    assert f"span detector saved to {out / 'spans'}" in result.output
    detector = EncoderSpanDetector.load(out / "spans")
    assert detector.manifest["encoder"]["d_v"] == D_V
    assert detector.manifest["training"]["data"]["started_from"] == "scratch"
    dev = detector.manifest["figures"]["dev"]["trained"]
    assert set(dev) == {"cased", "lower"} and dev["cased"]["same_end_recall"] > 0.5
    card = (out / "MODEL_CARD.md").read_text()
    assert f"ner-os train --data {data}" in card and "## Span detector" in card and "lowercased" in card
    # --head DIR brings its detector along
    found = detector_from_settings(Settings(head=str(out), spans="encoder"))
    assert found.manifest["digest"] == detector.manifest["digest"]
    # retrained without --spans: the old detector does not stay behind as this head's
    result = CliRunner().invoke(cli, ["train", "--data", str(data), "--types", str(types), "--format", "conll",
                                      "--out", str(out), *SMALL])
    assert result.exit_code == 0, result.output
    assert head_detector_directory(Settings(head=str(out))) is None


def test_default_out_is_under_the_data_dir(tmp_path, fake_encoder):
    data = write_corpus(tmp_path / "mine.bio", n_sentences=20)
    types = write_types(tmp_path / "names.json")
    result = CliRunner().invoke(cli, ["train", "--data", str(data), "--types", str(types), *SMALL])
    assert result.exit_code == 0, result.output
    assert ProjectionHead.load(tmp_path / "data" / "heads" / "mine-gemma3-270m-L2").encoder["layer"] == 2


@pytest.mark.parametrize("lines, types, message", [
    (["the\tO", "actor1\tB-ACT", "", "car2\tX-CAR"], KINDS, r"mine\.bio:4: malformed tag 'X-CAR'"),
    (["the\tO", "", "actor1\tB-ACT", "isl2\tB-ISL", "", "x\tB-FOO"], {"ACT", "ISL"},
     r"mine\.bio:6: label 'FOO' has no description in .*names\.json"),
    (["the\tO", "said\tO"], KINDS, r"mine\.bio: no labelled mention"),
    (["onlyatoken"], KINDS, r"mine\.bio:1: expected a token and a tag"),
])
def test_bad_input_is_one_line_naming_file_and_line(tmp_path, fake_encoder, lines, types, message):
    data = tmp_path / "mine.bio"
    data.write_text("\n".join(lines) + "\n")
    names = write_types(tmp_path / "names.json", types)
    result = CliRunner().invoke(cli, ["train", "--data", str(data), "--types", str(names), *SMALL])
    assert result.exit_code == 2
    assert len(result.output.strip().splitlines()) == 1 and result.output.startswith("Error:")
    assert re.search(message, result.output), result.output


def test_options_of_the_other_mode_are_refused(tmp_path, fake_encoder):
    data = write_corpus(tmp_path / "mine.bio", n_sentences=10)
    without_types = CliRunner().invoke(cli, ["train", "--data", str(data)])
    assert without_types.exit_code == 2 and "needs --types" in without_types.output
    folder = tmp_path / "folder"
    folder.mkdir()
    with_spans = CliRunner().invoke(cli, ["train", "--data", str(folder), "--spans"])
    assert with_spans.exit_code == 2 and "go with a data file" in with_spans.output
    few_nerd_flag = CliRunner().invoke(cli, ["train", "--data", str(data), "--types", str(write_types(
        tmp_path / "names.json")), "--hold-out-dev"])
    assert few_nerd_flag.exit_code == 2 and "--dev-share" in few_nerd_flag.output


def test_one_type_is_too_few_and_a_tiny_file_cannot_hold_out_dev(tmp_path, fake_encoder):
    data = tmp_path / "one.bio"
    data.write_text("".join(f"actor{i}\tB-ACT\nsaid\tO\n\n" for i in range(10)))
    with pytest.raises(ConfigError, match="at least two"):
        train_on_corpus(Settings.resolve(layer=2), data, write_types(tmp_path / "names.json"), progress=False)
    with pytest.raises(ConfigError, match="too few"):
        split_by_sentence(2, 0.1, 0)


def test_the_split_is_seeded_and_covers_every_sentence(tmp_path):
    train, dev = split_by_sentence(50, 0.2, 7)
    assert (train, dev) == split_by_sentence(50, 0.2, 7) and dev != split_by_sentence(50, 0.2, 8)[1]
    assert len(dev) == 10 and sorted(train + dev) == list(range(50))
    assert split_by_sentence(5, 0, 1) == ([0, 1, 2, 3, 4], [])


def test_the_corpus_is_read_by_the_eval_readers(tmp_path):
    data = write_corpus(tmp_path / "mine.bio", n_sentences=5)
    corpus = read_labelled_corpus(data, write_types(tmp_path / "names.json"))
    assert len(corpus.sentences) == 5 and set(corpus.type_names) <= set(KINDS)
    first = corpus.sentences[0]
    assert all(first.text[start:end].rstrip("0123456789") in KINDS.values()
               for start, end, _ in first.spans if " " not in first.text[start:end])
