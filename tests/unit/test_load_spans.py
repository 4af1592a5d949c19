"""Spans read from the loader's own forward pass (``--spans encoder|union``), the registry, the eval's
``--spans`` choices and ``ner-os spans`` (issue #15). Dry runs with a tiny random-initialised encoder
and a stand-in detector over its vectors; the real detector and model: the ``model`` test at the end."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
from click.testing import CliRunner

from ner_os.config import Settings
from ner_os.errors import ConfigError
from ner_os.loader import load
from ner_os.spans import DEFAULT_DETECTOR, NoDetector, Span, SpacyDetector, detector_from_name
from ner_os.spans.base import SpanDetector

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def embedder(tmp_path_factory):
    from test_encoder_tiny import tiny_encoder  # the encoder tests' tiny random-initialised model

    from ner_os.mentions.embedder import MentionEmbedder

    return MentionEmbedder(tiny_encoder("llama", tmp_path_factory), None)


class Counting:
    """The real encoder, its calls counted."""

    def __init__(self, encoder):
        self.inner, self.texts = encoder, []

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def encode(self, texts):
        self.texts += list(texts)
        return self.inner.encode(texts)


class LastWord(SpanDetector):
    """Reads encoded texts: the last word of each (checking it got the vectors of that very text)."""

    name = "last-word"

    def __init__(self):
        self.seen = []

    def detect_encoded(self, texts, encoded):
        spans = []
        for text, item in zip(texts, encoded):
            assert len(item.vectors) == len(item.offsets) and int(item.offsets[-1][1]) <= len(text)
            self.seen.append(text)
            start = text.rindex(" ") + 1
            spans.append([Span(start, len(text))])
        return spans

    def detect(self, texts):
        raise AssertionError("the loader must detect from the batch's own encoding")


class FirstAndLast(LastWord):
    """A union: a text part (the first word, found before encoding) and the vectors' part."""

    name = "first-and-last"

    def detect_text(self, texts):
        return [[Span(0, text.index(" "))] for text in texts]

    def detect_encoded(self, texts, encoded, text_spans=None):
        last = super().detect_encoded(texts, encoded)
        return [sorted([Span(*_pair(s)) for s in first] + other) for first, other in zip(text_spans, last)]


def _pair(span):
    return (span.start, span.end) if hasattr(span, "start") else tuple(span)


def corpus(tmp_path, texts, given=None):
    path = tmp_path / "corpus.jsonl"
    lines = [json.dumps({"text": text, **({"mentions": given[i]} if given and given.get(i) else {})})
             for i, text in enumerate(texts)]
    path.write_text("\n".join(lines) + "\n")
    return path


def dry_run(path, embedder, **options):
    return load(path, Settings.resolve(env={}, data_dir=str(path.parent / "data")), dry_run=True, embedder=embedder,
                progress=False, **options)


TEXTS = ["the patient had cholera", "she plays the cello", "penguins live in antarctica", "iron rusts fast"]


def test_spans_from_the_encoding_cost_no_second_forward_pass(tmp_path, embedder):
    counting = copy.copy(embedder)
    counting.encoder = Counting(embedder.encoder)
    detector = LastWord()
    summary = dry_run(corpus(tmp_path, TEXTS), counting, detector=detector)
    assert (summary.documents, summary.mentions, summary.rejected) == (4, 4, 0)
    assert sorted(counting.encoder.texts) == sorted(TEXTS)  # each text through the model once
    assert sorted(detector.seen) == sorted(TEXTS)
    assert set(summary.stage_seconds) == {"read", "spans", "encode", "head", "tag", "bulk"}
    assert summary.stage_seconds["spans"] > 0 and summary.stage_seconds["encode"] > 0


def test_given_mentions_are_kept_and_skip_the_detector(tmp_path, embedder):
    detector = LastWord()
    path = corpus(tmp_path, TEXTS, given={1: [{"start": 0, "end": 3}, {"start": 4, "end": 9}]})
    summary = dry_run(path, embedder, detector=detector)
    assert summary.mentions == 3 + 2
    assert TEXTS[1] not in detector.seen


def test_a_union_runs_its_text_part_before_the_encoder_and_merges(tmp_path, embedder):
    summary = dry_run(corpus(tmp_path, TEXTS), embedder, detector=FirstAndLast())
    assert summary.mentions == 8  # first word (text part) + last word (vectors) of each


def test_too_many_mentions_from_the_encoding_are_rejected(tmp_path, embedder, monkeypatch):
    import ner_os.loader.api as api

    class Everywhere(LastWord):
        def detect_encoded(self, texts, encoded):
            return [[Span(i, i + 1) for i in range(0, len(text), 2) if text[i] != " "] for text in texts]

    monkeypatch.setattr(api, "DEFAULT_NESTED_LIMIT", 3)
    summary = dry_run(corpus(tmp_path, ["a b", "a b c d e f g h"]), embedder, detector=Everywhere())
    assert (summary.documents, summary.rejected) == (1, 1)
    entry = json.loads((tmp_path / "corpus.rejects.jsonl").read_text())
    assert entry["line"] == 2 and "over the index's nested-object limit of 3" in entry["reason"]


def test_embed_encoded_is_embed_on_vectors_already_read(embedder):
    texts = ["Ada Lovelace met Babbage", "no mention here"]
    spans = [[(0, 12), (17, 24)], []]
    direct = embedder.embed(texts, spans)
    again = embedder.embed_encoded(texts, embedder.encoder.encode(texts), spans)
    assert [part.shape for part in again] == [(2, embedder.dim), (0, embedder.dim)]
    np.testing.assert_allclose(direct[0], again[0], atol=1e-6)


def test_steps_keep_their_signatures_for_text_detectors():
    from ner_os.loader.batches import Batch
    from ner_os.loader.ledger import LineLedger, Mark
    from ner_os.loader.records import Document
    from ner_os.loader.steps import detect_spans

    batch = Batch([Document(line=1, id="a", text="Egypt is hot", mentions=None)])
    kept = detect_spans(batch, NoDetector(), 10, LineLedger(Mark.origin()), None)
    assert kept.spans == [()] and kept.pending == []
    waiting = detect_spans(batch, LastWord(), 10, LineLedger(Mark.origin()), None)
    assert waiting.pending == [0]


# --- choosing a detector -------------------------------------------------------------------------


def test_the_default_detector_is_the_union_where_it_fits_and_settings_choose_another(embedder):
    from ner_os.spans import detector_from_settings

    assert DEFAULT_DETECTOR == "union" and Settings.resolve(env={}).spans is None
    assert Settings.resolve(env={"NER_OS_SPANS": "spacy"}).spans == "spacy"
    # the tiny model is no gemma3-270m at layer 15: unset, the default falls back to spaCy; chosen, it is refused
    assert isinstance(detector_from_settings(Settings.resolve(env={}, profile="custom")), SpacyDetector)
    assert isinstance(detector_from_settings(Settings.resolve(env={}), encoder=embedder.encoder), SpacyDetector)
    with pytest.raises(ConfigError, match="no span detector ships for profile 'custom'"):
        detector_from_settings(Settings.resolve(env={}, profile="custom", spans="union"))
    assert isinstance(detector_from_name("given"), NoDetector)
    with pytest.raises(ConfigError, match="choose one of union, encoder, spacy, given"):
        detector_from_name("regex")


def test_the_shipped_detector_refuses_an_encoder_it_was_not_trained_on(embedder):
    with pytest.raises(ConfigError, match="choose --spans spacy"):
        detector_from_name("encoder", encoder=embedder.encoder)  # the tiny model: not gemma3-270m layer 15


def test_eval_spans_accept_sources_and_detector_names():
    from ner_os.evaluation.plan import span_plan

    assert span_plan("gold,detected") == (("gold", "detected"), None)
    assert span_plan("given,union") == (("gold", "detected"), "union")
    assert span_plan("spacy") == (("detected",), "spacy")
    with pytest.raises(ConfigError, match="one span detector per eval"):
        span_plan("encoder,spacy")


# --- ner-os spans -----------------------------------------------------------------------------------


def test_preview_inputs_read_a_text_jsonl_lines_or_plain_lines(tmp_path):
    from ner_os.loader.preview import preview_inputs

    assert preview_inputs("Paris is big") == [("", "Paris is big", None)]
    path = tmp_path / "docs.jsonl"
    path.write_text(json.dumps({"text": "Ada met Babbage", "mentions": [{"start": 0, "end": 3}]}) + "\n\nplain line\n")
    assert preview_inputs(str(path)) == [("line 1", "Ada met Babbage", [Span(0, 3)]), ("line 3", "plain line", None)]
    path.write_text(json.dumps({"text": "Ada", "mentions": [{"start": 0, "end": 9}]}) + "\n")
    with pytest.raises(ConfigError, match="line 1: field 'mentions'"):
        preview_inputs(str(path))


def test_previews_mark_each_detectors_spans():
    from ner_os import render
    from ner_os.loader.preview import SpanPreview

    preview = SpanPreview("the cello and Paris", {"union": [Span(4, 9), Span(14, 19)], "spacy": [Span(14, 19)],
                                                  "encoder": []})
    lines = render.span_previews([preview], "[[{}]]".format)
    assert lines == ["text 1:", "  union     2  the [[cello]] and [[Paris]]", "  spacy     1  the cello and [[Paris]]",
                     "  encoder   0  (none)"]


def test_a_name_inside_a_phrase_is_marked_inside_the_phrase_mark():
    from ner_os import render
    from ner_os.loader.preview import SpanPreview

    text = "the 2011 Scottish Parliament election"
    preview = SpanPreview(text, {"spacy": [Span(4, 37), Span(9, 28), Span(20, 31)]})  # the last crosses: plain
    assert render.span_previews([preview], "[[{}]]".format)[1] == \
        "  spacy   3  the [[2011 [[Scottish Parliament]] election]]"


def test_the_spans_command_prints_spacys_spans_marked(tmp_path):
    from ner_os.cli import cli

    result = CliRunner().invoke(cli, ["spans", "Marie Curie was born in Warsaw.", "--spans", "spacy"])
    assert result.exit_code == 0, result.output
    assert "[[Marie Curie]]" in result.output and "[[Warsaw]]" in result.output
    bad = CliRunner().invoke(cli, ["spans", "x", "--spans", "regex"])
    assert bad.exit_code == 2 and "unknown span detector 'regex'" in bad.output


# --- the real detector over the real model ----------------------------------------------------------


@pytest.mark.model
def test_union_over_the_real_model_finds_lowercase_mentions_spacy_misses(tmp_path, monkeypatch):
    from ner_os.encoder import Encoder
    from ner_os.loader.preview import preview_spans

    text = "the patient died of cholera while the band played the cello in vienna."
    (preview,) = preview_spans(text, Settings.resolve(), detectors=("union", "encoder", "spacy"))
    assert {"cholera", "cello"} <= set(preview.surfaces("union"))
    assert "cholera" not in preview.surfaces("spacy")
    encoded, encode = [], Encoder.encode
    monkeypatch.setattr(Encoder, "encode", lambda self, texts: encoded.extend(texts) or encode(self, texts))
    summary = load(corpus(tmp_path, [text]), Settings.resolve(data_dir=str(tmp_path / "data"), spans="union"),
                   dry_run=True, progress=False)
    assert summary.mentions == len(preview.spans["union"])
    assert encoded == [text]  # the detector read the states the mention vectors are read from: one pass
