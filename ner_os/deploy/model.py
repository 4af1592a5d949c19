"""The type-vector model package: the graph, the description tokenizer and the zip ML Commons takes.

Built once per encoder export and head under ``<cache dir>/deploy/`` and reused: ``model.onnx``
(:mod:`ner_os.deploy.graph`), ``tokenizer.json`` (:mod:`ner_os.deploy.tokenizer`), ``model.zip``
(both at the top level, stored uncompressed with fixed timestamps so that the same inputs give the
same bytes and the same sha256) and ``manifest.json``. Before the zip is written, the graph run by
ONNX Runtime on the edited tokenizer's ids must give :meth:`MentionEmbedder.embed_types`'s
vectors (cosine >= PARITY_MIN_COS on PROBES); otherwise the build stops and says where they differ.
"""

from __future__ import annotations

import datetime
import json
import shutil
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ner_os.atomic import replacing_directory
from ner_os.checks import check_description
from ner_os.deploy.graph import OUTPUT, build_type_vector_graph
from ner_os.deploy.tokenizer import FILE as TOKENIZER_FILE
from ner_os.deploy.tokenizer import write_description_tokenizer
from ner_os.digest import digest, file_sha256
from ner_os.encoder.export import content_digests, ensure_export, read_manifest
from ner_os.errors import ConfigError
from ner_os.mentions.embedder import MentionEmbedder
from ner_os.profiles import resolve_profile

FORMAT = 1  # bump when the graph or the tokenizer edits change: a new package, a new model
GRAPH_FILE = "model.onnx"
ZIP_FILE = "model.zip"
MANIFEST_FILE = "manifest.json"
PARITY_MIN_COS = 0.9999
# ML Commons 2.19's bundled ONNX Runtime 1.16.3 runs the int8 graph's integer matmuls otherwise than the client's
# (cosine 0.9994 to the client's vector on "writer", 6e-4 between their scores); in fp32 they agree within 1e-4
CLUSTER_DTYPE = "fp32"
PROBES = ("dinosaur", "river in Africa", "  political   party ", "Ünïcödé café", "x", "a 20th-century composer of operas")
ZIP_TIME = (1980, 1, 1, 0, 0, 0)


@dataclass(frozen=True)
class TypeVectorPackage:
    """A built package: where it is, its zip's sha256 and size, the vector size and what made the vectors."""

    directory: Path
    sha256: str
    size: int
    dim: int
    vectors: dict  # MentionEmbedder.identity() of the embedder it reproduces
    architecture: str

    @property
    def zip_path(self) -> Path:
        return self.directory / ZIP_FILE

    @property
    def name(self) -> str:
        head = self.vectors.get("head") or "raw"
        return f"ner-os-{self.vectors.get('profile')}-l{self.vectors.get('layer')}-{head}-{self.sha256[:8]}"

    def model_config(self) -> dict[str, Any]:
        """ML Commons' model_config: the graph outputs the finished unit vector as [1, 1, dim] (row 0 = ``cls``)."""
        return {"model_type": self.architecture, "embedding_dimension": self.dim,
                "framework_type": "huggingface_transformers", "pooling_mode": "cls", "normalize_result": False}


def package_dir(settings, export_dir: Path, vectors: dict) -> Path:
    # keyed by what the package is made of: the export's bytes (graph, tokenizer), not when it was made, so that
    # a re-export giving the same bytes reuses the package (and the model) and one giving other bytes does not
    key = digest({"format": FORMAT, "vectors": vectors, "export": content_digests(export_dir)})[:10]
    return Path(settings.cache_dir) / "deploy" / f"{export_dir.name}-{key}"


def ensure_package(settings, embedder: MentionEmbedder | None = None, force: bool = False) -> TypeVectorPackage:
    """The package for the settings' profile, layer and head, in CLUSTER_DTYPE (fp16 where asked for: a graph
    over 2 GB in fp32): reused from the cache, or built and checked against ``embedder`` (by default the
    settings' embedder in those numerics)."""
    settings = settings.replace(dtype="fp16" if settings.dtype == "fp16" else CLUSTER_DTYPE)
    embedder = embedder or MentionEmbedder.from_settings(settings)
    profile = resolve_profile(settings.profile, model=settings.model, layer=settings.layer)
    export_dir = ensure_export(profile, dtype=settings.numerics, cache_dir=settings.cache_dir)
    vectors = embedder.identity()
    directory = package_dir(settings, export_dir, vectors)
    manifest_path = directory / MANIFEST_FILE
    if not force and manifest_path.is_file() and (directory / ZIP_FILE).is_file():
        manifest = json.loads(manifest_path.read_text())
        if manifest.get("format") == FORMAT and manifest.get("vectors") == vectors:
            return _package(directory, manifest)
    return build_package(export_dir, embedder, directory)


def build_package(export_dir: Path, embedder: MentionEmbedder, directory: Path) -> TypeVectorPackage:
    """Build graph, tokenizer and zip in a scratch folder, check parity, then move it to ``directory``."""
    with replacing_directory(directory) as scratch:
        export = read_manifest(export_dir)
        graph = build_type_vector_graph(export_dir, embedder.head, scratch / GRAPH_FILE, export["graph"])
        tokenizer = write_description_tokenizer(export_dir, embedder.encoder.start_token_id, scratch / TOKENIZER_FILE)
        cosines = parity_cosines(graph, tokenizer, embedder, PROBES)
        worst = int(np.argmin(cosines))
        if cosines[worst] < PARITY_MIN_COS:
            raise ConfigError(f"the type-vector graph does not reproduce embed_type: cosine {cosines[worst]:.6f} on "
                              f"{PROBES[worst]!r} (need >= {PARITY_MIN_COS}); not deploying it")
        write_zip(scratch / ZIP_FILE, [graph, tokenizer])
        graph.unlink()  # the zip holds it; keep the cache at one copy
        manifest = {"format": FORMAT, "vectors": embedder.identity(), "dim": int(embedder.dim),
                    "architecture": export.get("architecture") or "ner-os", "export": str(export_dir),
                    "sha256": file_sha256(scratch / ZIP_FILE), "size": (scratch / ZIP_FILE).stat().st_size,
                    "parity_min_cos": float(min(cosines)),
                    "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
        (scratch / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n")
    return _package(directory, manifest)


def _package(directory: Path, manifest: dict) -> TypeVectorPackage:
    return TypeVectorPackage(directory=directory, sha256=manifest["sha256"], size=int(manifest["size"]),
                             dim=int(manifest["dim"]), vectors=dict(manifest["vectors"]),
                             architecture=manifest["architecture"])


def write_zip(path: Path, files: Sequence[Path]) -> Path:
    """The files at the top level of a zip, stored (the weights do not compress), fixed timestamps."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
        for file in files:
            info = zipfile.ZipInfo(file.name, date_time=ZIP_TIME)
            info.external_attr = 0o644 << 16
            with open(file, "rb") as source, archive.open(info, "w", force_zip64=True) as target:
                shutil.copyfileobj(source, target, 1 << 22)
    return path


def graph_vectors(graph: Path, tokenizer: Path, descriptions: Sequence[str]) -> np.ndarray:
    """float32 [n, dim]: the graph run as ML Commons runs it, one text at a time, on the tokenizer's ids."""
    import onnxruntime as ort
    from tokenizers import Tokenizer

    session = ort.InferenceSession(str(graph), providers=["CPUExecutionProvider"])
    reader = Tokenizer.from_file(str(tokenizer))
    rows = []
    for description in descriptions:
        ids = np.asarray([reader.encode(description).ids], dtype=np.int64)
        (vector,) = session.run([OUTPUT], {"input_ids": ids, "attention_mask": np.ones_like(ids)})
        rows.append(vector[0, 0])
    return np.asarray(rows, dtype=np.float32)


def parity_cosines(graph: Path, tokenizer: Path, embedder: MentionEmbedder, descriptions: Sequence[str]) -> np.ndarray:
    """Cosine between the graph's vector and ``embed_type``'s for each description, each read alone, as the
    client and ML Commons read one (in int8 a batch's padding moves a vector by up to ~1e-3)."""
    local = np.stack([embedder.embed_type(check_description(description)) for description in descriptions])
    return np.sum(graph_vectors(graph, tokenizer, descriptions) * local, axis=1)
