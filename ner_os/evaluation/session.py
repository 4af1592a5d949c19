"""One evaluation's indexes, models and rankings (:class:`EvalSession`); :func:`ner_os.evaluation.run.evaluate` drives it.

Each mention index is built by the real loader, from records in memory
(:func:`ner_os.loader.load_records`). They all share one encoder pass: the loader takes an
embedder, and every embedder here sits on one remembering
:class:`ner_os.mentions.proxy.EncoderProxy`, which keeps the value vectors of each sentence after
its first encoding, so the raw and the projected indexes, both span sources and the exact rankers
read the same vectors and the model runs over each sentence once.
"""

from __future__ import annotations

import logging
import tempfile
import time
import uuid
from dataclasses import asdict
from functools import partial
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from ner_os.checks import check_description, check_vector
from ner_os.config import Settings
from ner_os.encoder import Encoder
from ner_os.errors import NerOsError
from ner_os.evaluation.baselines import (
    SentenceEmbedder, bm25_search_body, dense_search_body, sentence_actions, sentence_index_body,
)
from ner_os.evaluation.corpus import EvalDocument, EvalType, loader_records
from ner_os.evaluation.metrics import ExactRanker, evaluate as score_rankings, span_scores
from ner_os.evaluation.plan import EXACT_SYSTEMS, SPAN_FREE_SYSTEMS, VECTOR_SPACE, RunSpec
from ner_os.evaluation.results import RunResult
from ner_os.head import encoder_identity, head_for
from ner_os.loader import load_records
from ner_os.mentions.cache import token_vector_cache
from ner_os.mentions.embedder import MentionEmbedder
from ner_os.mentions.proxy import EncoderProxy
from ner_os.query import TypeQuery, drive, hybrid_pipeline, ranking, type_search_steps
from ner_os.spans import NoDetector, detector_from_settings
from ner_os.store.bulk import bulk_index, refresh
from ner_os.store.connection import client_from_settings, has_neural_search
from ner_os.store.schema import create_plain_index, delete_index, remove_templates
from ner_os.store.search import pipeline_exists, search, send

log = logging.getLogger(__name__)


class EvalSession:
    """The indexes, models and rankings of one evaluation."""

    def __init__(self, settings: Settings, documents: Sequence[EvalDocument], types: Sequence[EvalType],
                 clock, progress: bool | None = None, say: Callable[[str], None] = log.info,
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
        self._encoder: EncoderProxy | None = None
        self._embedders: dict[str, Any] = {}
        self._query_encoder = None  # the descriptions' own, where their numerics differ (Settings.query_numerics)
        self._spans: dict[str, list[tuple[tuple[int, int], ...]]] = {}
        self._detector = None
        self._sentence_embedder = None
        self._type_vectors: dict[str, dict[str, list[float]]] = {}
        self._server_hybrid: dict[str, bool] = {}
        self.dense_wanted = True  # whether the sentence index holds MiniLM vectors too
        self._workdir = tempfile.TemporaryDirectory(prefix="ner-os-eval-")

    # --- shared resources, built on first use -------------------------------------------------

    @property
    def client(self):
        if self._client is None:
            self._client = client_from_settings(self.settings)
        return self._client

    def index_name(self, part: str) -> str:
        return f"{self.settings.index}-eval-{self.run_id}-{part}"

    def embedder(self, space: str):
        """The mention embedder of a vector space (``raw`` or ``ner-os``), all on one remembering encoder."""
        if space not in self._embedders:
            if self._encoder is None:
                with self.clock.timed("load encoder"):
                    self._encoder = EncoderProxy(Encoder.from_settings(self.settings), remember=True)
                self._encode_corpus()
            head = None
            if space == "ner-os":
                head = head_for(self.settings, self._encoder)
                if head is None:
                    log.warning("no projection head fits this encoder: ner-os runs on raw value vectors")
            self._embedders[space] = MentionEmbedder(self._encoder, head)
        return self._embedders[space]

    def query_embedder(self, space: str):
        """The embedder of the type descriptions in ``space``: the mention embedder's head over an encoder
        in the query numerics, as :class:`ner_os.client.NerOs` reads them (the mention embedder itself
        when the numerics are the documents')."""
        embedder = self.embedder(space)
        if self.settings.query_numerics == self.settings.numerics:
            return embedder
        if self._query_encoder is None:
            with self.clock.timed("load query encoder"):
                self._query_encoder = Encoder.from_settings(self.settings.for_queries())
        return MentionEmbedder(self._query_encoder, embedder.head)

    def _encode_corpus(self) -> None:
        """Every sentence through the model once, before the first load (slices already in the
        token-vector cache, with ``vector_cache``, are read instead)."""
        texts = [document.text for document in self.documents]
        cache = token_vector_cache(self.settings, self._encoder) if self.vector_cache else None
        self.say(f"encoding {len(texts):,} sentences" + (f" (token vectors kept in {cache.directory})" if cache else ""))
        with self.clock.timed("encode corpus"):
            self._encoder.encode_all(texts, cache=cache, progress=self.progress)

    def detector(self):
        if self._detector is None:
            if self.settings.spans in (None, "encoder", "union") and self._encoder is None:
                self.embedder("raw")  # the detector reads the remembering encoder's vectors
            with self.clock.timed("load span detector"):
                self._detector = detector_from_settings(self.settings, encoder=self._encoder)
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

        vectors = None
        if self.dense_wanted:
            self.say("embedding sentences with all-MiniLM-L6-v2")
            with self.clock.timed("sentence vectors (MiniLM)"):
                self._sentence_embedder = SentenceEmbedder(device=self.settings.device)
                vectors = self._sentence_embedder.embed([document.text for document in self.documents])
        with self.clock.timed("index sentences"):
            self._fresh_index(name)
            dim = self._sentence_embedder.dim if vectors is not None else None
            create_plain_index(self.client, name, sentence_index_body(dim))
            self.indexes.append(name)
            written = bulk_index(self.client, sentence_actions(name, [d.id for d in self.documents],
                                                               [d.text for d in self.documents], vectors))
            if written.failures:
                first = written.failures[0]
                raise NerOsError(f"indexing sentences into {name}: {len(written.failures)} documents refused, "
                                 f"e.g. {first.doc_id}: {first.reason}")
            refresh(self.client, name)
        return name

    def _rank_bm25(self, index: str) -> dict[str, list[str]]:
        return {t.label: self._search_ids(index, bm25_search_body(t.description, t.depth)) for t in self.types}

    def _rank_dense(self, index: str) -> dict[str, list[str]]:
        vectors = self._sentence_embedder.embed([t.description for t in self.types])
        return {t.label: self._search_ids(index, dense_search_body(vector, t.depth))
                for t, vector in zip(self.types, vectors)}

    def _search_ids(self, index: str, body: dict) -> list[str]:
        return [doc_id for doc_id, _score in ranking(search(self.client, index, body))]

    # the mention systems: one index per vector space and span source, built by the loader

    def mention_index(self, space: str, spans: str) -> str:
        name = self.index_name(f"{space}-{spans}")
        if name in self.indexes:
            return name

        embedder = self.embedder(space)
        records = list(loader_records(self.documents, self.spans(spans)))
        self._fresh_index(name)
        self.indexes.append(name)
        self.say(f"loading {len(self.documents):,} documents into {name}")
        encoded_before = self._encoder.encoded_texts
        with self.clock.timed(f"load {space} [{spans}]"):
            # the loader's checkpoints go to this run's scratch directory: an eval index is never resumed
            scratch = self.settings.replace(index=name, data_dir=self._workdir.name)
            summary = load_records(records, scratch, name=f"{space}-{spans}", resume=False, progress=self.progress,
                                   rejects=Path(self._workdir.name) / f"{space}-{spans}.rejects.jsonl",
                                   embedder=embedder, detector=self.detector() if spans == "detected" else NoDetector(),
                                   client=self.client)
            refresh(self.client, name)
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
        """Each type through the query layer's steps (:func:`ner_os.query.type_search_steps`), as
        :meth:`ner_os.client.NerOs.search_type` sends them: fused on the server when it can."""
        vectors = self._query_vectors(space)
        server_hybrid = hybrid and self._fuses_on_server(index)
        rankings = {}
        for t in self.types:
            query = TypeQuery(t.description, size=t.depth, k=t.depth, hybrid=hybrid, mentions_per_hit=1)
            steps = type_search_steps(vectors[t.label], query, index=index, server_hybrid=server_hybrid,
                                      pipeline=hybrid_pipeline(index))
            rankings[t.label] = drive(steps, partial(send, self.client, index)).ids
        return rankings

    def _query_vectors(self, space: str) -> dict[str, list[float]]:
        """Each type's query vector in ``space``, one description at a time as a query client reads it."""
        if space not in self._type_vectors:
            embedder = self.query_embedder(space)
            self._type_vectors[space] = {t.label: check_vector(embedder.embed_type(check_description(t.description)),
                                                               embedder.dim) for t in self.types}
        return self._type_vectors[space]

    def _fuses_on_server(self, index: str) -> bool:
        """True when the cluster fuses BM25 and k-NN itself: neural-search and the index's RRF pipeline."""
        if index not in self._server_hybrid:
            self._server_hybrid[index] = (has_neural_search(self.client)
                                          and pipeline_exists(self.client, hybrid_pipeline(index)))
        return self._server_hybrid[index]

    def _rank_exact(self, space: str, spans: str) -> dict[str, list[str]]:
        """Exact cosine over the same mention vectors the loader indexed (from the remembered encoding)."""
        embedder = self.embedder(space)
        document_spans = self.spans(spans)
        with self.clock.timed(f"exact vectors {space} [{spans}]"):
            vectors = embedder.embed([document.text for document in self.documents], document_spans)
        doc_ids = [document.id for document, rows in zip(self.documents, vectors) for _ in range(len(rows))]
        ranker = ExactRanker(np.concatenate(vectors), doc_ids)
        # the descriptions as NerOs.type_vector computes them for the k-NN systems
        queries = self.query_embedder(space).embed_types([t.description for t in self.types])
        rankings = ranker.rank_many(queries, top_n=max(t.depth for t in self.types))
        return {t.label: ranking.doc_ids[: t.depth] for t, ranking in zip(self.types, rankings)}

    # --- housekeeping -------------------------------------------------------------------------

    def _fresh_index(self, name: str) -> None:
        delete_index(self.client, name)
        remove_templates(self.client, name)

    def close(self, delete_indexes: bool = True) -> None:
        """Remove the scratch files, and the eval's indexes unless asked to keep them."""
        self._workdir.cleanup()
        if delete_indexes:
            self.delete_indexes()

    def delete_indexes(self) -> None:
        if self._client is None:
            return

        for name in self.indexes:
            try:
                delete_index(self.client, name)
                remove_templates(self.client, name)
            except Exception as error:  # noqa: BLE001 - cleaning up must not hide the real outcome
                log.warning("could not delete eval index %s: %s", name, error)
        self.indexes.clear()

    def model_description(self) -> dict:
        """Which encoder, layer and head produced the mention vectors (empty when none ran)."""
        out: dict[str, Any] = {}
        if self._encoder is not None:
            out.update(encoder=encoder_identity(self._encoder), backend=self.settings.backend,
                       dtype=self.settings.numerics, query_dtype=self.settings.query_numerics, device=self.settings.device,
                       texts_encoded=self._encoder.encoded_texts)
        if "ner-os" in self._embedders:
            head = self._embedders["ner-os"].head
            out["head"] = None if head is None else head.manifest.get("source")
            if head is not None:  # which weights: a head directory can be retrained in place
                out["head_weights_sha256"] = head.digest
        if self._sentence_embedder is not None:
            out["dense"] = {"model": self._sentence_embedder.name, "directory": str(self._sentence_embedder.directory)}
        return out
