"""``ner-os eval``: retrieval quality of ner-os against BM25 and a sentence embedder, side by side.

A BIO/CoNLL file becomes a corpus of one sentence per document. A document is relevant to a type
when it holds a gold mention of that type, and the type's description (from the name map; the
label itself when the map lacks it) is the query. Every system ranks the same documents in the
same OpenSearch, each from a fresh index:

==============  ==============================================================================
``bm25``        ``match`` on ``text``
``dense``       k-NN over one all-MiniLM-L6-v2 vector per sentence
``raw``         nested k-NN over the mentions' value vectors, no head
``ner-os``      nested k-NN over the projected mention vectors
``hybrid``      ``ner-os`` and BM25 fused by the query layer (RRF)
``ner-os-exact``  exact cosine in numpy over the same projected vectors: what HNSW costs
``raw-exact``   the same for the raw value vectors (not run by default)
==============  ==============================================================================

The mention systems run once per span source: ``gold`` (the file's own mentions, handed to the
loader as each document's ``mentions``) and ``detected`` (the loader's span detector, run once
here and handed over the same way). Each mention index is built by the real loader. They all share
one encoder pass: the loader takes an embedder, and every embedder here sits on one
:class:`RememberingEncoder`, which keeps the value vectors of each sentence after its first
encoding, so the raw and the projected indexes, both span sources and the exact rankers read the
same vectors and the model runs over each sentence once.

Ranking depth: each type's ranking holds ``max(1000, R)`` documents, at most 10,000 (the k-NN
plugin's largest ``k`` and OpenSearch's result window): enough for R-Precision (the top R),
Recall@100, and MAP to depth 1000 or R, whichever is larger. A type with R over 10,000 is scored on
a truncated ranking, and the result says so.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import random
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

from ner_os.config import Settings
from ner_os.errors import ConfigError, NerOsError
from ner_os.evaluation.metrics import RetrievalReport, evaluate as score_rankings, is_catch_all_type
from ner_os.evaluation.readers import GoldMention, Sentence, read_bio
from ner_os.loader.load import StageClock

log = logging.getLogger(__name__)

SYSTEMS = ("bm25", "dense", "raw", "ner-os", "hybrid", "ner-os-exact", "raw-exact")
DEFAULT_SYSTEMS = ("bm25", "dense", "raw", "ner-os", "hybrid", "ner-os-exact")
SPAN_SOURCES = ("gold", "detected")
SPAN_FREE_SYSTEMS = frozenset({"bm25", "dense"})
# which mention vectors each mention system reads: "raw" value vectors or "ner-os" projected ones
VECTOR_SPACE = {"raw": "raw", "raw-exact": "raw", "ner-os": "ner-os", "hybrid": "ner-os", "ner-os-exact": "ner-os"}
EXACT_SYSTEMS = frozenset({"raw-exact", "ner-os-exact"})
# the reader handles both layouts: token first, tag last, tab or space separated, IOB1/IOB2/IO tags
READERS: dict[str, Callable[[str | Path], Iterable[Sentence]]] = {"bio": read_bio, "conll": read_bio}
MIN_DEPTH = 1000
MAX_DEPTH = 10_000  # the k-NN plugin's largest k and index.max_result_window


# --- the corpus and its judgements ---------------------------------------------------------------


@dataclass(frozen=True)
class EvalDocument:
    """One sentence of the file, as a document, with its gold mentions kept aside for judging."""

    id: str
    text: str
    gold: tuple[GoldMention, ...]
    line: int  # of the sentence's first token in the file

    @property
    def gold_spans(self) -> tuple[tuple[int, int], ...]:
        return tuple((mention.start, mention.end) for mention in self.gold)


@dataclass(frozen=True)
class EvalType:
    """A type to query: its label in the file, the description that is the query, its relevant documents."""

    label: str
    description: str
    relevant: frozenset[str]

    @property
    def depth(self) -> int:
        return ranking_depth(len(self.relevant))


def ranking_depth(n_relevant: int) -> int:
    """Documents a type's ranking holds: max(1000, R), at most 10,000."""
    return min(MAX_DEPTH, max(MIN_DEPTH, n_relevant))


def read_corpus(path: str | Path, data_format: str = "bio", limit: int | None = None, seed: int = 0) -> list[EvalDocument]:
    """The file's sentences as documents, ids ``s<ordinal in the file>``; with ``limit``, a seeded
    random sample of that many sentences, kept in file order."""
    if data_format not in READERS:
        raise ConfigError(f"unknown data format {data_format!r}; known: {', '.join(READERS)}")
    if limit is not None and limit < 1:
        raise ConfigError(f"--limit {limit}: must be at least 1")
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such file")
    sentences = list(READERS[data_format](path))
    if not sentences:
        raise ConfigError(f"{path}: no sentences found (expected one token and its tag per line, a blank line between sentences)")
    width = len(str(len(sentences) - 1))
    picked = range(len(sentences))
    if limit is not None and limit < len(sentences):
        picked = sorted(random.Random(seed).sample(range(len(sentences)), limit))
    return [EvalDocument(id=f"s{i:0{width}d}", text=sentences[i].text, gold=tuple(sentences[i].mentions),
                         line=sentences[i].line) for i in picked]


def read_type_names(path: str | Path) -> dict[str, str]:
    """The name map: a JSON object from label to the plain-words description used as the query."""
    path = Path(path)
    try:
        names = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path}: not valid JSON ({error})") from None
    if not isinstance(names, dict):
        raise ConfigError(f"{path}: expected a JSON object mapping each label to its description")
    for label, description in names.items():
        if not isinstance(description, str) or not description.strip():
            raise ConfigError(f"{path}: the description of {label!r} must be non-empty text, got {description!r}")
    return {label: " ".join(description.split()) for label, description in names.items()}


def eval_types(documents: Sequence[EvalDocument], names: Mapping[str, str]) -> list[EvalType]:
    """Every label with a gold mention in the corpus, with its description and relevant documents,
    in label order. A label the map lacks is its own description."""
    relevant: dict[str, set[str]] = {}
    for document in documents:
        for mention in document.gold:
            relevant.setdefault(mention.label, set()).add(document.id)
    if not relevant:
        raise ConfigError("the corpus holds no gold mention, so no type can be judged")
    missing = sorted(label for label in relevant if label not in names)
    if missing:
        log.warning("no description for %s in the name map; querying with the label itself", ", ".join(missing))
    return [EvalType(label, names.get(label, label), frozenset(ids)) for label, ids in sorted(relevant.items())]


def loader_records(documents: Sequence[EvalDocument], spans: Sequence[Sequence[tuple[int, int]]]) -> Iterable[dict]:
    """The loader's JSONL input: each document with the mentions it is to be indexed with."""
    for document, document_spans in zip(documents, spans):
        yield {"id": document.id, "text": document.text, "line": document.line,
               "mentions": [{"start": int(start), "end": int(end)} for start, end in document_spans]}


def write_jsonl(records: Iterable[dict], path: Path) -> Path:
    with path.open("w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    return path


# --- what to run ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunSpec:
    """One row of the results: a system, and for mention systems the span source it read."""

    system: str
    spans: str | None = None

    @property
    def name(self) -> str:
        return self.system if self.spans is None else f"{self.system} [{self.spans}]"


def parse_choices(text: str | Sequence[str], known: Sequence[str], what: str) -> tuple[str, ...]:
    """``"bm25, dense"`` or ``["bm25", "dense"]`` -> checked names, in the given order, once each."""
    items = text.split(",") if isinstance(text, str) else list(text)
    chosen = tuple(dict.fromkeys(item.strip().lower() for item in items if item.strip()))
    if not chosen:
        raise ConfigError(f"no {what} given; choose from {', '.join(known)}")
    unknown = [item for item in chosen if item not in known]
    if unknown:
        raise ConfigError(f"unknown {what} {', '.join(map(repr, unknown))}; choose from {', '.join(known)}")
    return chosen


def plan_runs(systems: Sequence[str], span_sources: Sequence[str]) -> list[RunSpec]:
    """Span-free systems once, mention systems once per span source."""
    runs = [RunSpec(system) for system in systems if system in SPAN_FREE_SYSTEMS]
    runs += [RunSpec(system, spans) for spans in span_sources for system in systems if system not in SPAN_FREE_SYSTEMS]
    return runs


# --- one encoder pass for everything -------------------------------------------------------------


class RememberingEncoder:
    """An encoder that keeps what it encoded: a text asked for again costs nothing.

    It has the encoder's interface (every attribute but ``encode`` is the wrapped encoder's), so the
    loader, :class:`ner_os.mentions.embedder.MentionEmbedder` and the query layer take it as they are. Memory:
    one ``[n_tokens, d_v]`` float32 array per distinct text (1 KB per token for Gemma 3 270M).
    """

    def __init__(self, encoder):
        self._encoder = encoder
        self._encoded: dict[str, Any] = {}
        self._lock = threading.Lock()
        self.encoded_texts = 0  # texts that went through the model

    def encode(self, texts: Sequence[str]) -> list:
        if isinstance(texts, str):
            raise TypeError("encode takes a list of texts, not one string")
        with self._lock:
            missing = [text for text in dict.fromkeys(texts) if text not in self._encoded]
        if missing:
            fresh = self._encoder.encode(missing)
            with self._lock:
                self._encoded.update(zip(missing, fresh))
                self.encoded_texts += len(missing)
        with self._lock:
            return [self._encoded[text] for text in texts]

    def remember(self, texts: Sequence[str], encoded: Sequence) -> None:
        """Take encodings made elsewhere (a :class:`TokenVectorStore`) as if this encoder had made them."""
        with self._lock:
            self._encoded.update(zip(texts, encoded))

    def encode_all(self, texts: Sequence[str], store: "TokenVectorStore | None" = None, slice_texts: int = 256,
                   progress: bool | None = None) -> None:
        """Encode every text not yet known, longest first, slice by slice (one progress step each).

        With a ``store``, a slice it holds is read instead of encoded, and each slice encoded is
        written to it at once: an interrupted run loses one slice at most.
        """
        from tqdm import tqdm

        with self._lock:
            missing = sorted(set(texts) - set(self._encoded), key=lambda text: (-len(text), text))
        tokenize = getattr(self._encoder, "tokenize", None)
        shown = progress if progress is not None else sys.stderr.isatty()
        with tqdm(total=len(missing), unit="text", desc="encoding", disable=not shown, leave=False) as bar:
            for first in range(0, len(missing), slice_texts):
                part = missing[first : first + slice_texts]
                stored = store.read(part, tokenize) if store is not None else None
                if stored is not None:
                    self.remember(part, stored)
                else:
                    encoded = self.encode(part)
                    if store is not None:
                        store.write(part, encoded)
                bar.update(len(part))

    def __getattr__(self, name):
        return getattr(self._encoder, name)


def encoding_key(encoder, settings: Settings) -> dict[str, Any]:
    """What the token vectors of a text depend on: the model, layer and numerics, and the tokenizer."""
    from ner_os.head import encoder_identity

    return {**encoder_identity(encoder), "backend": settings.backend, "dtype": settings.dtype,
            "tokenizer": str(getattr(getattr(encoder, "tokenizer", None), "name_or_path", "")),
            "max_tokens": getattr(encoder, "max_tokens", None), "chunk_context": getattr(encoder, "chunk_context", None)}


class TokenVectorStore:
    """Token vectors of texts on disk, so that a rerun of the eval need not encode them again.

    One file per slice of texts: ``<cache_dir>/eval-token-vectors/<digest of the encoding key>/<digest
    of the slice's texts>.npz`` holding ``vectors`` (float32 ``[tokens, d_v]``, the texts end to end),
    ``offsets`` and ``lengths``. Each text's offsets are checked against a fresh tokenisation when
    read, so a tokenizer that changed never serves stale vectors.
    """

    def __init__(self, root: str | Path, key: Mapping[str, Any]):
        self.key = dict(key)
        self.directory = Path(root) / "eval-token-vectors" / _digest(self.key)[:16]

    def path(self, texts: Sequence[str]) -> Path:
        return self.directory / f"{_digest(list(texts))[:24]}.npz"

    def read(self, texts: Sequence[str], tokenize: Callable[[str], Any] | None = None) -> list | None:
        """The stored encodings of ``texts`` (in order), or None when absent or stale."""
        from ner_os.encoder.runtime import EncodedText

        path = self.path(texts)
        if not path.is_file():
            return None
        with np.load(path) as stored:
            vectors, offsets, lengths = stored["vectors"], stored["offsets"], stored["lengths"]
        if len(lengths) != len(texts) or int(lengths.sum()) != len(vectors):
            log.warning("%s does not hold these texts; encoding them again", path)
            return None
        out = []
        for text, end, length in zip(texts, np.cumsum(lengths), lengths):
            rows = slice(int(end - length), int(end))
            if tokenize is not None and not np.array_equal(np.asarray(tokenize(text)[1]), offsets[rows]):
                log.warning("the tokenizer changed since %s was written; encoding again", path)
                return None
            out.append(EncodedText(vectors=vectors[rows], offsets=offsets[rows]))
        return out

    def write(self, texts: Sequence[str], encoded: Sequence) -> Path:
        self.directory.mkdir(parents=True, exist_ok=True)
        key_file = self.directory / "key.json"
        if not key_file.is_file():
            key_file.write_text(json.dumps(self.key, indent=2, sort_keys=True) + "\n")
        path = self.path(texts)
        partial = path.with_name(path.stem + ".partial.npz")
        np.savez(partial,
                 vectors=np.concatenate([np.asarray(item.vectors, np.float32) for item in encoded]),
                 offsets=np.concatenate([np.asarray(item.offsets, np.int32) for item in encoded]),
                 lengths=np.asarray([len(item.offsets) for item in encoded], dtype=np.int64))
        os.replace(partial, path)  # a kill mid-write never leaves a truncated slice behind
        return path


def _weights_digest(weights: Mapping[str, np.ndarray]) -> str:
    import hashlib

    digest = hashlib.sha256()
    for name in sorted(weights):
        digest.update(name.encode("utf-8"))
        digest.update(np.ascontiguousarray(weights[name], dtype=np.float32).tobytes())
    return digest.hexdigest()[:16]


def _digest(value: Any) -> str:
    import hashlib

    return hashlib.sha256(json.dumps(value, sort_keys=True, ensure_ascii=False).encode("utf-8")).hexdigest()


# --- results --------------------------------------------------------------------------------------


@dataclass
class RunResult:
    spec: RunSpec
    index: str | None  # None for the exact rankers (numpy)
    scores: RetrievalReport
    query_seconds: float

    def to_dict(self) -> dict:
        scores = self.scores.to_dict()
        return {"name": self.spec.name, "system": self.spec.system, "spans": self.spec.spans, "index": self.index,
                "macro": scores["macro"], "macro_specific": scores["macro_specific"],
                "per_type": scores["per_type"], "query_seconds": round(self.query_seconds, 3)}


@dataclass
class EvalResult:
    data: str
    data_format: str
    sentences_in_file: int
    limit: int | None
    seed: int
    documents: int
    types: list[EvalType]
    runs: list[RunResult]
    span_sources: tuple[str, ...]
    span_detection: dict | None = None  # detected spans against gold spans (metrics.SpanScores)
    loads: list[dict] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    wall_seconds: float = 0.0
    model: dict = field(default_factory=dict)
    command: str | None = None
    date: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))

    def run(self, system: str, spans: str | None = None) -> RunResult | None:
        for result in self.runs:
            if result.spec.system == system and result.spec.spans in (spans, None):
                return result
        return None

    def macro_r_precision(self, spans: str | None) -> dict[str, float]:
        """System name -> macro R-Precision, span-free systems included, for one span source."""
        out = {}
        for result in self.runs:
            if result.spec.spans in (None, spans):
                out[result.spec.system] = result.scores.macro["r_precision"]
        return out

    def to_dict(self) -> dict:
        headline_spans = self.span_sources[0] if self.span_sources else None
        return {
            "benchmark": "ner-os eval",
            "data": self.data,
            "format": self.data_format,
            "sentences_in_file": self.sentences_in_file,
            "limit": self.limit,
            "seed": self.seed,
            "documents": self.documents,
            "macro_r_precision": self.macro_r_precision(headline_spans),
            "macro_r_precision_spans": headline_spans,
            "macro_r_precision_by_spans": {spans: self.macro_r_precision(spans) for spans in self.span_sources},
            "types": [{"label": t.label, "description": t.description, "relevant": len(t.relevant),
                       "catch_all": is_catch_all_type(t.label), "ranking_depth": t.depth} for t in self.types],
            "ranking_depth": f"max({MIN_DEPTH}, R) documents per type, at most {MAX_DEPTH}",
            "runs": [result.to_dict() for result in self.runs],
            "span_detection": self.span_detection,
            "loads": self.loads,
            "timings_seconds": {name: round(value, 2) for name, value in self.timings.items()},
            "wall_seconds": round(self.wall_seconds, 1),
            "model": self.model,
            "command": self.command,
            "machine": machine(),
            "date": self.date,
        }


def machine() -> dict:
    """The machine, with its load average when the figures were taken (a shared CPU slows every step)."""
    return {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(), "python": platform.python_version(),
            "load_average_1_5_15_min": [round(value, 2) for value in os.getloadavg()]}


# --- the evaluation -------------------------------------------------------------------------------


def evaluate(
    data: str | Path,
    type_names: str | Path,
    *,
    settings: Settings | None = None,
    systems: Sequence[str] | str = DEFAULT_SYSTEMS,
    span_sources: Sequence[str] | str = SPAN_SOURCES,
    data_format: str = "bio",
    limit: int | None = None,
    seed: int = 0,
    out: str | Path | None = None,
    keep_indexes: bool = False,
    vector_cache: bool = False,
    progress: bool | None = None,
    say: Callable[[str], None] = log.info,
    command: str | None = None,
    **flags: Any,
) -> EvalResult:
    """Rank the corpus of ``data`` for each of its types with each system and score the rankings.

    ``settings`` (or ``Settings.resolve(**flags)``) pick the cluster, the model and the head;
    ``settings.index`` is the prefix of the eval's indexes (``<index>-eval-<run id>-<part>``), which
    are deleted at the end unless ``keep_indexes``. ``vector_cache`` keeps the corpus's token vectors
    under the cache dir (see :class:`TokenVectorStore`), so that a rerun with another head, span source
    or index setting encodes nothing. With ``out``, the markdown table, the JSON and the chart are
    written there (see :mod:`ner_os.evaluation.report`).
    """
    started = time.perf_counter()
    settings = settings if settings is not None else Settings.resolve(**flags)
    systems = parse_choices(systems, SYSTEMS, "system")
    span_sources = parse_choices(span_sources, SPAN_SOURCES, "span source")
    clock = StageClock()
    with clock.timed("read corpus"):
        names = read_type_names(type_names)
        documents = read_corpus(data, data_format, limit, seed)
        types = eval_types(documents, names)
        in_file = len(documents) if limit is None else _count_sentences(data, data_format)
    say(f"{len(documents):,} documents, {len(types)} types, systems {', '.join(systems)}; "
        f"mention systems with {' and '.join(span_sources)} spans")
    session = EvalSession(settings, documents, types, clock, progress=progress, say=say, vector_cache=vector_cache)
    try:
        runs = session.run_all(plan_runs(systems, span_sources))
    finally:
        session.close(delete_indexes=not keep_indexes)
    result = EvalResult(
        data=str(data), data_format=data_format, sentences_in_file=in_file, limit=limit, seed=seed,
        documents=len(documents), types=types, runs=runs, span_sources=span_sources,
        span_detection=session.span_detection, loads=session.loads, timings=clock.snapshot(),
        wall_seconds=time.perf_counter() - started, model=session.model_description(), command=command,
    )
    if out is not None:
        from ner_os.evaluation.report import write_report

        write_report(result, out)
    return result


def _count_sentences(data: str | Path, data_format: str) -> int:
    return sum(1 for _ in READERS[data_format](data))


class EvalSession:
    """The indexes, models and rankings of one evaluation."""

    def __init__(self, settings: Settings, documents: Sequence[EvalDocument], types: Sequence[EvalType],
                 clock: StageClock, progress: bool | None = None, say: Callable[[str], None] = log.info,
                 vector_cache: bool = False):
        self.settings = settings
        self.vector_cache = vector_cache
        self.documents = list(documents)
        self.types = list(types)
        self.clock = clock
        self.progress = progress
        self.say = say
        self.run_id = uuid.uuid4().hex[:8]
        self.relevance = {t.label: t.relevant for t in self.types}
        self.indexes: list[str] = []
        self.loads: list[dict] = []
        self.span_detection: dict | None = None
        self._client = None
        self._encoder: RememberingEncoder | None = None
        self._embedders: dict[str, Any] = {}
        self._spans: dict[str, list[tuple[tuple[int, int], ...]]] = {}
        self._detector = None
        self._sentence_embedder = None
        self._query_clients: dict[str, Any] = {}
        self.dense_wanted = True  # whether the sentence index holds MiniLM vectors too
        self._workdir = tempfile.TemporaryDirectory(prefix="ner-os-eval-")

    # --- shared resources, built on first use -------------------------------------------------

    @property
    def client(self):
        if self._client is None:
            from ner_os.store.index import client_from_settings

            self._client = client_from_settings(self.settings)
        return self._client

    def index_name(self, part: str) -> str:
        return f"{self.settings.index}-eval-{self.run_id}-{part}"

    def embedder(self, space: str):
        """The mention embedder of a vector space (``raw`` or ``ner-os``), all on one remembering encoder."""
        if space not in self._embedders:
            from ner_os.head import head_for
            from ner_os.mentions.embedder import MentionEmbedder

            if self._encoder is None:
                from ner_os.encoder.runtime import Encoder

                with self.clock.timed("load encoder"):
                    self._encoder = RememberingEncoder(Encoder.from_settings(self.settings))
                self._encode_corpus()
            head = None
            if space == "ner-os":
                head = head_for(self.settings, self._encoder)
                if head is None:
                    log.warning("no projection head fits this encoder: ner-os runs on raw value vectors")
            self._embedders[space] = MentionEmbedder(self._encoder, head)
        return self._embedders[space]

    def _encode_corpus(self) -> None:
        """Every sentence through the model once, before the first load (slices already in the
        token-vector store, with ``vector_cache``, are read instead)."""
        texts = [document.text for document in self.documents]
        store = TokenVectorStore(self.settings.cache_dir, encoding_key(self._encoder, self.settings)) \
            if self.vector_cache else None
        self.say(f"encoding {len(texts):,} sentences" + (f" (token vectors kept in {store.directory})" if store else ""))
        with self.clock.timed("encode corpus"):
            self._encoder.encode_all(texts, store=store, progress=self.progress)

    def detector(self):
        if self._detector is None:
            from ner_os.spans.core import detector_from_settings

            with self.clock.timed("load span detector"):
                self._detector = detector_from_settings(self.settings)
        return self._detector

    def spans(self, source: str) -> list[tuple[tuple[int, int], ...]]:
        """Each document's mention spans from one source: the gold ones, or the detector's."""
        if source not in self._spans:
            if source == "gold":
                self._spans[source] = [document.gold_spans for document in self.documents]
            else:
                self._spans[source] = self._detect()
        return self._spans[source]

    def _detect(self) -> list[tuple[tuple[int, int], ...]]:
        from ner_os.evaluation.metrics import span_scores

        detector = self.detector()
        self.say("detecting spans")
        with self.clock.timed("detect spans"):
            found = detector.detect([document.text for document in self.documents])
        spans = [tuple((int(span.start), int(span.end)) for span in document_spans) for document_spans in found]
        self.span_detection = asdict(span_scores([document.gold for document in self.documents], found))
        self.say(f"detected spans: recall {self.span_detection['recall_exact']:.2f} exact, "
                 f"{self.span_detection['recall_same_end']:.2f} same end, "
                 f"{self.span_detection['recall_overlap']:.2f} overlapping the gold spans")
        return spans

    # --- running the systems -----------------------------------------------------------------

    def run_all(self, runs: Sequence[RunSpec]) -> list[RunResult]:
        self.dense_wanted = any(spec.system == "dense" for spec in runs)
        results = []
        for spec in runs:
            rankings, index, seconds = self.rank(spec)
            results.append(RunResult(spec, index, score_rankings(rankings, self.relevance), seconds))
            self.say(f"{spec.name}: macro R-Precision {results[-1].scores.macro['r_precision']:.3f}")
        return results

    def rank(self, spec: RunSpec) -> tuple[dict[str, list[str]], str | None, float]:
        """Each type's ranking under ``spec``, the index it came from, and the seconds the queries took."""
        if spec.system in SPAN_FREE_SYSTEMS:
            index = self.sentence_index()
        elif spec.system in EXACT_SYSTEMS:
            index = None
        else:
            index = self.mention_index(VECTOR_SPACE[spec.system], spec.spans)
        started = time.perf_counter()
        with self.clock.timed(f"queries {spec.name}"):
            if spec.system == "bm25":
                rankings = self._rank_bm25(index)
            elif spec.system == "dense":
                rankings = self._rank_dense(index)
            elif spec.system in EXACT_SYSTEMS:
                rankings = self._rank_exact(VECTOR_SPACE[spec.system], spec.spans)
            else:
                rankings = self._rank_mentions(index, VECTOR_SPACE[spec.system], hybrid=spec.system == "hybrid")
        return rankings, index, time.perf_counter() - started

    # bm25 and dense share one index of sentences: text, and a MiniLM vector each when dense runs

    def sentence_index(self) -> str:
        name = self.index_name("sentences")
        if name in self.indexes:
            return name
        from ner_os.evaluation.baselines import SentenceEmbedder, sentence_actions, sentence_index_body
        from ner_os.store.index import bulk_index

        vectors = None
        if self.dense_wanted:
            self.say("embedding sentences with all-MiniLM-L6-v2")
            with self.clock.timed("sentence vectors (MiniLM)"):
                self._sentence_embedder = SentenceEmbedder(device=self.settings.device)
                vectors = self._sentence_embedder.embed([document.text for document in self.documents])
        with self.clock.timed("index sentences"):
            self._fresh_index(name)
            dim = self._sentence_embedder.dim if vectors is not None else None
            self.client.indices.create(index=name, body=sentence_index_body(dim))
            self.indexes.append(name)
            written = bulk_index(self.client, sentence_actions(name, [d.id for d in self.documents],
                                                               [d.text for d in self.documents], vectors))
            if written.failures:
                first = written.failures[0]
                raise NerOsError(f"indexing sentences into {name}: {len(written.failures)} documents refused, "
                                 f"e.g. {first.doc_id}: {first.reason}")
            self.client.indices.refresh(index=name)
        return name

    def _rank_bm25(self, index: str) -> dict[str, list[str]]:
        from ner_os.evaluation.baselines import bm25_search_body

        return {t.label: self._search_ids(index, bm25_search_body(t.description, t.depth)) for t in self.types}

    def _rank_dense(self, index: str) -> dict[str, list[str]]:
        from ner_os.evaluation.baselines import dense_search_body

        vectors = self._sentence_embedder.embed([t.description for t in self.types])
        return {t.label: self._search_ids(index, dense_search_body(vector, t.depth))
                for t, vector in zip(self.types, vectors)}

    def _search_ids(self, index: str, body: dict) -> list[str]:
        from ner_os.query.core import ranking

        return [doc_id for doc_id, _score in ranking(self.client.search(index=index, body=body))]

    # the mention systems: one index per vector space and span source, built by the loader

    def mention_index(self, space: str, spans: str) -> str:
        name = self.index_name(f"{space}-{spans}")
        if name in self.indexes:
            return name
        from ner_os.loader.load import load

        embedder = self.embedder(space)
        source = write_jsonl(loader_records(self.documents, self.spans(spans)),
                             Path(self._workdir.name) / f"{space}-{spans}.jsonl")
        self._fresh_index(name)
        self.indexes.append(name)
        self.say(f"loading {len(self.documents):,} documents into {name}")
        encoded_before = self._encoder.encoded_texts
        with self.clock.timed(f"load {space} [{spans}]"):
            # the loader's checkpoints go to this run's scratch directory: an eval index is never resumed
            scratch = self.settings.replace(index=name, data_dir=self._workdir.name)
            summary = load(source, scratch, resume=False, progress=self.progress,
                           rejects=Path(self._workdir.name) / f"{space}-{spans}.rejects.jsonl",
                           embedder=embedder, detector=self.detector() if spans == "detected" else _no_detector(),
                           client=self.client)
            self.client.indices.refresh(index=name)
        self.loads.append({"index": name, "space": space, "spans": spans, "documents": summary.documents,
                           "mentions": summary.mentions, "rejected": summary.rejected,
                           "texts_encoded": self._encoder.encoded_texts - encoded_before,
                           "wall_seconds": round(summary.wall_seconds, 2),
                           "stage_seconds": {k: round(v, 2) for k, v in summary.stage_seconds.items()}})
        if summary.rejected:
            log.warning("%d documents were rejected by the loader (%s); they count as never retrieved",
                        summary.rejected, summary.rejects_path)
        return name

    def _rank_mentions(self, index: str, space: str, hybrid: bool) -> dict[str, list[str]]:
        ner = self._query_client(space)
        return {t.label: ner.search_type(t.description, index=index, size=t.depth, k=t.depth, hybrid=hybrid,
                                         mentions_per_hit=1).ids for t in self.types}

    def _query_client(self, space: str):
        from ner_os.client import NerOs

        if space not in self._query_clients:
            embedder = self.embedder(space)
            # all descriptions in one encoder call; each query's type_vector then reads them back
            embedder.embed_types([t.description for t in self.types])
            self._query_clients[space] = NerOs(self.settings, opensearch=self.client, embedder=embedder)
        return self._query_clients[space]

    def _rank_exact(self, space: str, spans: str) -> dict[str, list[str]]:
        """Exact cosine over the same mention vectors the loader indexed (from the remembered encoding)."""
        from ner_os.evaluation.metrics import ExactRanker

        embedder = self.embedder(space)
        document_spans = self.spans(spans)
        with self.clock.timed(f"exact vectors {space} [{spans}]"):
            vectors = embedder.embed([document.text for document in self.documents], document_spans)
        doc_ids = [document.id for document, rows in zip(self.documents, vectors) for _ in range(len(rows))]
        ranker = ExactRanker(np.concatenate(vectors), doc_ids)
        # the descriptions through the same embedder, as NerOs.type_vector computes them for the k-NN systems
        queries = embedder.embed_types([t.description for t in self.types])
        rankings = ranker.rank_many(queries, top_n=max(t.depth for t in self.types))
        return {t.label: ranking.doc_ids[: t.depth] for t, ranking in zip(self.types, rankings)}

    # --- housekeeping -------------------------------------------------------------------------

    def _fresh_index(self, name: str) -> None:
        from ner_os.store.index import remove_templates

        self.client.indices.delete(index=name, ignore_unavailable=True)
        remove_templates(self.client, name)

    def close(self, delete_indexes: bool = True) -> None:
        """Remove the scratch files, and the eval's indexes unless asked to keep them."""
        self._workdir.cleanup()
        if delete_indexes:
            self.delete_indexes()

    def delete_indexes(self) -> None:
        if self._client is None:
            return
        from ner_os.store.index import remove_templates

        for name in self.indexes:
            try:
                self.client.indices.delete(index=name, ignore_unavailable=True)
                remove_templates(self.client, name)
            except Exception as error:  # noqa: BLE001 - cleaning up must not hide the real outcome
                log.warning("could not delete eval index %s: %s", name, error)
        self.indexes.clear()

    def model_description(self) -> dict:
        """Which encoder, layer and head produced the mention vectors (empty when none ran)."""
        out: dict[str, Any] = {}
        if self._encoder is not None:
            from ner_os.head import encoder_identity

            out.update(encoder=encoder_identity(self._encoder), backend=self.settings.backend,
                       dtype=self.settings.dtype, device=self.settings.device,
                       texts_encoded=self._encoder.encoded_texts)
        if "ner-os" in self._embedders:
            head = self._embedders["ner-os"].head
            out["head"] = None if head is None else head.manifest.get("source")
            if head is not None:  # which weights: a head directory can be retrained in place
                out["head_weights_sha256"] = _weights_digest(head.weights)
        if self._sentence_embedder is not None:
            out["dense"] = {"model": self._sentence_embedder.name, "directory": str(self._sentence_embedder.directory)}
        return out


def _no_detector():
    from ner_os.spans.core import NoDetector

    return NoDetector()
