"""The ONNX Runtime backend: a session over an exported truncated graph (one layer).

Startup (CPU): building a session from the exported graph parses the whole protobuf (1 GB for
Gemma 3 270M fp32, most of it the 262k-row embedding table), runs the graph optimisers and
prepacks the MatMul weights: seconds. The first session on a machine therefore also saves the
optimised graph (:func:`optimized_graph`: ``ort-optimized/<key>/`` beside the export, every
initializer and the prepacked weights in an external data file that ONNX Runtime memory-maps);
later sessions load that one with the optimisers off. The embedding table is then a mapped file
that only the gathered rows are read from. The key holds the ONNX Runtime version, the source
graph's size and mtime and the CPU, so a changed export, runtime or machine builds a new one.

The session is built on first use, or in a background thread from :meth:`OnnxRunner.start` (the
:class:`~ner_os.encoder.encoder.Encoder` calls it before tokenising, so both load at once).
"""

from __future__ import annotations

import hashlib
import logging
import os
import platform
import shutil
import tempfile
import threading
from pathlib import Path

import numpy as np
import onnxruntime as ort

from ner_os.encoder.export import OUTPUT, read_manifest
from ner_os.encoder.runner import Backend
from ner_os.encoder.text_tokenizer import TextTokenizer
from ner_os.errors import ConfigError

log = logging.getLogger(__name__)

OPTIMIZED_DIR = "ort-optimized"
OPTIMIZED_GRAPH = "model.onnx"


class OnnxRunner:
    """An ONNX Runtime session over an exported truncated graph (one layer), built on first use."""

    def __init__(self, graph: str | Path, layer: int, device: str = "cpu", threads: int | None = None,
                 cache_optimized: bool = True, spin: bool = False):
        self.graph = Path(graph)
        self.layer = layer
        self.device = device
        self.threads = threads or cpu_threads()
        self.spin = spin
        self.cache_optimized = cache_optimized and device == "cpu"
        if device == "cuda" and "CUDAExecutionProvider" not in ort.get_available_providers():
            raise ConfigError("device=cuda with backend=onnx needs onnxruntime-gpu (pip install 'ner-os[gpu]')")
        self.source: Path | None = None  # the graph the session was built from (the export's, or the optimised one)
        self._session = None
        self._lock = threading.Lock()
        self._loader: threading.Thread | None = None
        self._error: BaseException | None = None

    def start(self) -> None:
        """Start building the session in a background thread (returns at once; idempotent)."""
        with self._lock:
            if self._session is not None or self._loader is not None:
                return
            self._loader = threading.Thread(target=self._load_in_background, name="onnx-session")
            self._loader.start()

    def _load_in_background(self) -> None:
        try:
            session = self._build()
        except BaseException as error:  # noqa: BLE001 - handed to the thread that asks for the session
            self._error = error
            return
        self._session = session

    @property
    def session(self) -> ort.InferenceSession:
        """The session: built here, or waited for when :meth:`start` is building it."""
        loader = self._loader
        if loader is not None:
            loader.join()
            if self._error is not None:
                raise self._error
        if self._session is None:
            with self._lock:
                if self._session is None:
                    self._session = self._build()
        return self._session

    def _build(self) -> ort.InferenceSession:
        providers = ["CPUExecutionProvider"]
        if self.device == "cuda":
            providers.insert(0, "CUDAExecutionProvider")
        self.source = self.graph
        if not self.cache_optimized:
            return ort.InferenceSession(str(self.graph), sess_options=self._options(), providers=providers)
        cached = optimized_graph(self.graph)
        if cached.is_file():
            options = self._options(ort.GraphOptimizationLevel.ORT_DISABLE_ALL)
            try:
                session = ort.InferenceSession(str(cached), sess_options=options, providers=providers)
                self.source = cached
                return session
            except Exception as error:  # noqa: BLE001 - a damaged cache entry: rebuild it from the export
                log.warning("cannot load the optimised graph %s (%s); rebuilding it", cached, error)
                shutil.rmtree(cached.parent, ignore_errors=True)
        return self._build_and_save(cached, providers)

    def _build_and_save(self, cached: Path, providers: list[str]) -> ort.InferenceSession:
        """A session over the export that also writes its optimised graph to ``cached`` (atomically)."""
        cached.parent.parent.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(prefix=".building-", dir=cached.parent.parent))
        try:
            options = self._options(ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED)
            options.optimized_model_filepath = str(scratch / OPTIMIZED_GRAPH)
            options.add_session_config_entry("session.optimized_model_external_initializers_file_name",
                                             OPTIMIZED_GRAPH + ".data")
            options.add_session_config_entry("session.optimized_model_external_initializers_min_size_in_bytes", "64")
            options.add_session_config_entry("session.save_external_prepacked_constant_initializers", "1")
            session = ort.InferenceSession(str(self.graph), sess_options=options, providers=providers)
            for stale in cached.parent.parent.iterdir():
                if stale.is_dir() and not stale.name.startswith(".") and stale != cached.parent:
                    shutil.rmtree(stale, ignore_errors=True)  # another runtime's or CPU's, or an older export's
            try:
                os.replace(scratch, cached.parent)
            except OSError:  # another process wrote it first: theirs is the same graph
                pass
            return session
        finally:
            shutil.rmtree(scratch, ignore_errors=True)

    def _options(self, level=ort.GraphOptimizationLevel.ORT_ENABLE_ALL) -> ort.SessionOptions:
        options = ort.SessionOptions()
        options.graph_optimization_level = level
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        # no busy-waiting between ops unless asked: the loader runs span detection and indexing beside
        # the encoder, while a query client, idle but for the encoder, gains ~3 ms a description from it
        options.add_session_config_entry("session.intra_op.allow_spinning", "1" if self.spin else "0")
        return options

    def check_layers(self, layers: list[int]) -> None:
        if layers != [self.layer]:
            raise ConfigError(f"this ONNX export reads layer {self.layer} only; use backend=torch to read layers {layers}")

    def run(self, input_ids: np.ndarray, attention_mask: np.ndarray, layers: list[int]) -> dict[int, np.ndarray]:
        (values,) = self.session.run([OUTPUT], {"input_ids": input_ids, "attention_mask": attention_mask})
        return {self.layer: values.astype(np.float32, copy=False)}


def optimized_graph(graph: Path) -> Path:
    """Where the optimised form of ``graph`` is kept for this runtime and CPU."""
    stat = graph.stat()
    key = hashlib.sha256(
        f"{ort.__version__}|{graph.name}|{stat.st_size}|{stat.st_mtime_ns}|{cpu_identity()}".encode()
    ).hexdigest()[:16]
    return graph.parent / OPTIMIZED_DIR / key / OPTIMIZED_GRAPH


def cpu_identity() -> str:
    """The CPU model and instruction-set flags (prepacked weights depend on them)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            lines = [line for line in handle if line.startswith(("model name", "flags"))][:2]
        return "|".join(sorted(lines))
    except OSError:
        return f"{platform.machine()}|{platform.processor()}"


def onnx_backend(directory: str | Path, device: str = "cpu", threads: int | None = None, spin: bool = False) -> Backend:
    """The runner, tokenizer, d_v and window of the export in ``directory`` (the session and the
    vocabulary are loaded on first use)."""
    manifest = read_manifest(directory)
    runner = OnnxRunner(Path(directory) / manifest["graph"], manifest["layer"], device=device, threads=threads,
                        spin=spin)
    tokenizer = TextTokenizer(directory)
    window = manifest.get("max_position_embeddings") or 1 << 30
    return Backend(runner, tokenizer, d_v=manifest["d_v"], window=window, dtype=manifest["dtype"])


def cpu_threads() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1
