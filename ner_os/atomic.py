"""A directory built in a scratch folder beside its target, then put in the target's place in one move.

A reader never sees half a build: an export, converted weights or a deploy package is written into
a temporary directory on the same filesystem, and only a finished one replaces the target
(``os.replace``); a failed build leaves the old target as it was and no scratch folder behind.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator


@contextlib.contextmanager
def replacing_directory(target: Path, *, prefix: str | None = None, built: str | None = None) -> Iterator[Path]:
    """Yield a scratch directory beside ``target``; when the block ends without error, the scratch
    (or its subfolder ``built``) replaces ``target``. The scratch is removed either way."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=prefix or f".{target.name}-", dir=target.parent))
    try:
        yield scratch
        if target.exists():
            shutil.rmtree(target)
        os.replace(scratch / built if built else scratch, target)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
