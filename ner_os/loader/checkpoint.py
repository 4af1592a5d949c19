"""The checkpoint of a load: the mark up to which every line is settled, kept on disk between runs.

It lives under ``<data_dir>/checkpoints/<index>/``, named after the input, and holds the byte offset
and SHA-256 of the input up to that line, so a resumed run skips exactly what the index already has
and starts over when the input changed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ner_os.config import Settings
from ner_os.loader.ledger import Mark
from ner_os.mentions.embedder import vectors_identity

log = logging.getLogger(__name__)

CHECKPOINT_FORMAT = "ner-os-load-checkpoint"
CHECKPOINT_VERSION = 1


def pipeline_identity(embedder, detector) -> dict[str, Any]:
    """What produced the vectors: a checkpoint left by another model, head or detector is not resumed."""
    return {
        "vectors": vectors_identity(embedder),
        "dim": int(embedder.dim),
        "detector": str(getattr(detector, "name", type(detector).__name__)),
    }


class Checkpoint:
    """The mark of a load, under ``<data_dir>/checkpoints/<index>/<input name>.<hash of its path>.json``.

    It is only read back for the same input path, index (by UUID, so a deleted and recreated index
    starts over), shard and pipeline (model, head, detector)."""

    def __init__(self, path: Path, identity: dict[str, Any]):
        self.path = path
        self.identity = json.loads(json.dumps(identity))  # as it reads back from disk

    @classmethod
    def for_source(cls, settings: Settings, source, shard: tuple[int, int], index_uuid: str | None,
                   pipeline: dict[str, Any]) -> "Checkpoint":
        """The checkpoint of ``source`` (a :mod:`ner_os.loader.sources` source: its ``checkpoint_key()``
        gives what identifies it, a file's resolved path, and the name the checkpoint file starts with)."""
        key, name = source.checkpoint_key()
        index, count = shard
        name = f"{name}.{hashlib.sha256(key.encode()).hexdigest()[:16]}"
        name += f".shard-{index}-of-{count}.json" if count > 1 else ".json"
        identity = {"input": key, "index": settings.index, "index_uuid": index_uuid, "shard": [index, count],
                    "pipeline": pipeline}
        return cls(settings.data_path / "checkpoints" / settings.index / name, identity)

    def read(self) -> Mark | None:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, json.JSONDecodeError) as error:
            log.warning("ignoring unreadable checkpoint %s (%s)", self.path, error)
            return None
        if data.get("format") != CHECKPOINT_FORMAT or data.get("version") != CHECKPOINT_VERSION:
            return None
        if data.get("identity") != self.identity:
            log.info("checkpoint %s is for another index, model or shard; starting from the first line", self.path)
            return None
        try:
            return Mark(**data["mark"])
        except (KeyError, TypeError):
            return None

    def save(self, mark: Mark) -> None:
        payload = {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, "identity": self.identity,
                   "mark": asdict(mark), "updated": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # a temporary file of this save's own (two loaders of one input share the checkpoint), then an
        # atomic replace: a kill mid-write leaves the previous checkpoint whole, a reader never sees half
        handle, temporary = tempfile.mkstemp(dir=self.path.parent, prefix=self.path.name + ".", suffix=".tmp")
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as out:
                out.write(json.dumps(payload, indent=1) + "\n")
            os.replace(temporary, self.path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
