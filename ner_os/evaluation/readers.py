"""Readers for token-per-line NER files (BIO / IOB2 / IOB1, CoNLL-style columns).

A sentence becomes one text, its tokens joined by single spaces, and each gold entity becomes a
mention with character offsets into that text. Accepted layout: one token per line, the token in
the first column and the tag in the last (tab or space separated, extra columns ignored), a blank
line between sentences, ``#`` comment lines and ``-DOCSTART-`` lines skipped. A line that starts
with ``#`` is a token, not a comment, when ``#`` is its whole first column and a tag follows (Few-NERD
has ``#<TAB>B-product_car`` in "the # 36 Castrol TOM 'S Toyota Supra").

:func:`read_type_names` reads the name map that goes with such a file: label -> plain-words description.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from ner_os.errors import ConfigError, NerOsError

TYPE_NAMES_FILE = "type_names.json"  # the name map beside the Few-NERD INTER files


@dataclass(frozen=True)
class GoldMention:
    start: int
    end: int
    label: str


@dataclass
class Sentence:
    tokens: list[str]
    mentions: list[GoldMention] = field(default_factory=list)
    line: int = 0  # 1-based line of the sentence's first token in its file

    @property
    def text(self) -> str:
        return " ".join(self.tokens)

    def surface(self, mention: GoldMention) -> str:
        return self.text[mention.start : mention.end]


class FormatError(NerOsError):
    pass


_TAG = re.compile(r"^(O|[BIESLU][-_]\S+)$")


def read_bio(path: str | Path, tag_column: int = -1) -> Iterator[Sentence]:
    """Yield the sentences of a BIO/CoNLL file with gold mentions as character spans. A line that is
    not UTF-8 text, or a tag that is no BIO tag, is a ``FormatError`` naming the file and the line."""
    path = Path(path)
    tokens: list[str] = []
    tags: list[str] = []
    first_line = 0
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            line = _decoded(raw, path, number).rstrip("\n").rstrip("\r")
            if not line.strip():
                if tokens:
                    yield _sentence(tokens, tags, first_line)
                tokens, tags = [], []
                continue
            if line.startswith("-DOCSTART-") or (line.startswith("#") and not _is_hash_token(line)):
                continue
            columns = line.split("\t") if "\t" in line else line.split()
            if len(columns) < 2:
                raise FormatError(f"{path}:{number}: expected a token and a tag, got {line!r}")
            if not tokens:
                first_line = number
            tokens.append(columns[0])
            tags.append(_checked_tag(columns[tag_column].strip(), path, number))
    if tokens:
        yield _sentence(tokens, tags, first_line)


def _decoded(raw: bytes, path: Path, number: int) -> str:
    if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    nul = raw.find(b"\0")
    if nul >= 0:
        raise FormatError(f"{path}:{number}: binary data (a NUL byte at column {nul + 1}), not a "
                          "token-per-line text file")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise FormatError(f"{path}:{number}: not UTF-8 text (byte 0x{raw[error.start]:02x} at column "
                          f"{error.start + 1}); convert the file, e.g. iconv -f latin1 -t utf-8") from None


# a one-letter prefix and a separator, then the label: the prefixes of IOB1/IOB2, IOBES and BILOU
_PREFIXED = re.compile(r"^(?P<prefix>[A-Za-z])[-_](?P<label>.*)$")
_PREFIXES = frozenset("BIESLU")


def _checked_tag(tag: str, path: Path, number: int) -> str:
    """The tag, when it is ``O``, a prefix (B, I, E, S, L, U), ``-`` or ``_`` and a label, or a bare
    label (IO tagging, as in Few-NERD's ``person-actor``); otherwise a ``FormatError``."""
    prefixed = _PREFIXED.match(tag)
    if prefixed and (prefixed["prefix"] not in _PREFIXES or not prefixed["label"].strip()):
        raise FormatError(f"{path}:{number}: malformed tag {tag!r}: expected O, or B-, I-, E-, S-, L- or U- and a "
                          "label (e.g. B-LOC), or a bare label")
    return tag


def _is_hash_token(line: str) -> bool:
    """``#<TAB>tag`` (any tag) or ``# B-X`` is the token "#"; ``# sent_id = 3`` is a comment."""
    if "\t" in line:
        columns = line.split("\t")
        return columns[0] == "#" and len(columns) >= 2
    columns = line.split()
    return columns[0] == "#" and len(columns) >= 2 and bool(_TAG.match(columns[-1]))


def _sentence(tokens: list[str], tags: list[str], line: int) -> Sentence:
    starts = []
    offset = 0
    for token in tokens:
        starts.append(offset)
        offset += len(token) + 1
    mentions: list[GoldMention] = []
    current: tuple[int, int, str] | None = None  # (first token, last token, label)
    for i, tag in enumerate(tags):
        prefix, label = _split_tag(tag)
        continues = (
            current is not None
            and label == current[2]
            and (prefix == "I" or (prefix == "" and label != "O"))
        )
        if continues:
            current = (current[0], i, current[2])
            continue
        if current is not None:
            mentions.append(_mention(current, starts, tokens))
            current = None
        if label != "O":
            current = (i, i, label)
    if current is not None:
        mentions.append(_mention(current, starts, tokens))
    return Sentence(tokens=tokens, mentions=mentions, line=line)


def _split_tag(tag: str) -> tuple[str, str]:
    """'B-person_actor' -> ('B', 'person_actor'); 'O' -> ('', 'O'); a bare label -> ('', label)."""
    if tag == "O" or not tag:
        return "", "O"
    if len(tag) > 2 and tag[1] in "-_" and tag[0] in _PREFIXES:
        prefix = {"E": "I", "L": "I", "S": "B", "U": "B"}.get(tag[0], tag[0])
        return prefix, tag[2:]
    return "", tag  # IO tagging, as in Few-NERD's own files


def _mention(span: tuple[int, int, str], starts: list[int], tokens: list[str]) -> GoldMention:
    first, last, label = span
    return GoldMention(start=starts[first], end=starts[last] + len(tokens[last]), label=label)


def read_type_names(path: str | Path) -> dict[str, str]:
    """The name map: a JSON object from label to the plain-words description used as the query.

    Every description must be non-empty text; runs of whitespace in it become one space.
    """
    path = Path(path)
    try:
        names = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: not found (no such file)") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: a folder, not the name map's JSON file") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path}: not valid JSON ({error})") from None
    if not isinstance(names, dict):
        raise ConfigError(f"{path}: expected a JSON object mapping each label to its description")
    for label, description in names.items():
        if not isinstance(description, str) or not description.strip():
            raise ConfigError(f"{path}: the description of {label!r} must be non-empty text, got {description!r}")
    return {label: " ".join(description.split()) for label, description in names.items()}
