"""What a load has settled: the mark (how far every line is done), the lines in flight, the reject file."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ner_os.loader.records import Line, Rejected


Ahead = tuple[tuple[int, str, int, int], ...]  # (line, digest of its bytes, documents, mentions)


@dataclass(frozen=True)
class Mark:
    """A point in the input: every line up to ``line`` is settled; the totals are what those lines gave.

    ``ahead``: the lines after it that OpenSearch already acknowledged (or that a later line with the
    same id replaced), each with a digest of its bytes: the batches of a window are written shortest
    first, so the settled prefix can trail far behind what is written, and a resumed run skips these
    lines instead of encoding them again (a line whose bytes changed is loaded again)."""

    line: int
    offset: int
    sha256: str
    documents: int = 0
    mentions: int = 0
    rejected: int = 0
    ahead: Ahead = ()

    def __post_init__(self):  # read back from JSON, the entries are lists
        object.__setattr__(self, "ahead", tuple((int(n), str(d), int(docs), int(m)) for n, d, docs, m in self.ahead))

    @classmethod
    def origin(cls) -> "Mark":
        return cls(0, 0, hashlib.sha256().hexdigest())


def line_digest(line: Line) -> str:
    return hashlib.blake2b(line.raw, digest_size=8).hexdigest()


@dataclass
class _Pending:
    offset: int
    sha: Any  # hashlib state after this line
    settled: bool = False
    documents: int = 0
    mentions: int = 0
    rejected: int = 0
    digest: str | None = None  # set for a line that needs work (encoding, writing): it may go ``ahead``


class LineLedger:
    """Lines in flight, in input order. A line is settled when OpenSearch acknowledged it, when it is in
    the reject file, or when it needs nothing (blank, another shard's); the mark moves over the longest
    settled prefix, and :meth:`checkpoint_mark` adds the acknowledged lines beyond it."""

    def __init__(self, mark: Mark):
        self.mark = mark
        self._pending: dict[int, _Pending] = {}  # insertion order is input order
        self._earlier = {number: (digest, documents, mentions) for number, digest, documents, mentions in mark.ahead}
        self._lock = threading.Lock()

    def open(self, line: Line, sha, settled: bool = False, rejected: int = 0) -> None:
        with self._lock:
            digest = None if settled else line_digest(line)
            self._pending[line.number] = _Pending(line.end_offset, sha, settled, rejected=rejected, digest=digest)

    def open_if_acknowledged(self, line: Line, sha) -> bool:
        """Open ``line`` settled, with what it gave, when the run this one resumes had it acknowledged
        (the same bytes at the same line); False when it is to be loaded."""
        with self._lock:
            earlier = self._earlier.pop(line.number, None)
            if earlier is None or earlier[0] != line_digest(line):
                return False
            digest, documents, mentions = earlier
            self._pending[line.number] = _Pending(line.end_offset, sha, True, documents, mentions, digest=digest)
            return True

    def settle(self, line_number: int, documents: int = 0, mentions: int = 0, rejected: int = 0) -> None:
        with self._lock:
            entry = self._pending[line_number]
            entry.settled = True
            entry.documents, entry.mentions, entry.rejected = documents, mentions, rejected

    def advance(self) -> bool:
        """Move the mark over the settled lines at the front; True when it moved."""
        with self._lock:
            documents, mentions, rejected = self.mark.documents, self.mark.mentions, self.mark.rejected
            last = None
            while self._pending:
                number = next(iter(self._pending))
                entry = self._pending[number]
                if not entry.settled:
                    break
                del self._pending[number]
                documents, mentions, rejected = (documents + entry.documents, mentions + entry.mentions,
                                                 rejected + entry.rejected)
                last = (number, entry)
            if last is None:
                return False
            number, entry = last
            self.mark = Mark(number, entry.offset, entry.sha.hexdigest(), documents, mentions, rejected)
            return True

    def checkpoint_mark(self) -> Mark:
        """The mark with the lines beyond it that are acknowledged: by this run, or by the run it resumes
        and not reached yet (rejected lines are left out: they are checked again, which costs little)."""
        with self._lock:
            ahead = [(number, entry.digest, entry.documents, entry.mentions) for number, entry in self._pending.items()
                     if entry.settled and not entry.rejected and entry.digest is not None]
            ahead += [(number, *earlier) for number, earlier in self._earlier.items() if number > self.mark.line]
            return dataclasses.replace(self.mark, ahead=tuple(sorted(ahead)))

    def unsettled(self) -> int:
        with self._lock:
            return sum(not entry.settled for entry in self._pending.values())


class RejectLog:
    """The reject file: one JSON object per rejected line (``line``, ``reason``, ``id`` when known,
    ``excerpt``), created at the first reject. A fresh run removes the file an earlier run left; a
    resumed run keeps its entries up to the checkpoint (the lines after it are read again).
    ``unit``: the key of the position, ``line`` or ``record``."""

    def __init__(self, path: Path, keep_through_line: int = 0, unit: str = "line"):
        self.path = Path(path)
        self.unit = unit
        self._lock = threading.Lock()
        self._handle = None
        self._kept = self._entries_through(keep_through_line) if keep_through_line else []
        self.path.unlink(missing_ok=True)
        self.count = len(self._kept)
        if self._kept:
            self._open()

    def _entries_through(self, last_line: int) -> list[str]:
        if not self.path.is_file():
            return []
        kept = []
        for text in self.path.read_text(encoding="utf-8").splitlines():
            try:
                line = json.loads(text).get(self.unit)
            except (json.JSONDecodeError, AttributeError):
                continue
            if isinstance(line, int) and line <= last_line:
                kept.append(text)
        return kept

    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._handle = self.path.open("w", encoding="utf-8")
        self._handle.writelines(text + "\n" for text in self._kept)
        self._handle.flush()

    def write(self, rejected: Rejected) -> None:
        with self._lock:
            if self._handle is None:
                self._open()
            self._handle.write(json.dumps(rejected.to_json(self.unit), ensure_ascii=False) + "\n")
            self._handle.flush()  # before the checkpoint can move past this line
            self.count += 1

    def close(self) -> None:
        with self._lock:
            if self._handle is not None:
                self._handle.close()
                self._handle = None
