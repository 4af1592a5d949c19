"""One settings object for the whole tool.

Every value is read, in order, from an explicit argument (a CLI flag or a keyword in the Python
API), then from the environment (``NER_OS_<FIELD>`` in upper case), then from the default below.
Secrets (the password) are held but never printed: ``repr`` and ``describe`` mask them.
"""

from __future__ import annotations

import dataclasses
import os
import re
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Mapping, Sequence
from urllib.parse import urlsplit, urlunsplit

import platformdirs

from ner_os.errors import ConfigError
from ner_os.profiles import DTYPES, measured_cpu_dtype, resolve_profile

ENV_PREFIX = "NER_OS_"
SECRET_FIELDS = frozenset({"password"})


def _user_dir(kind: str) -> str:
    if kind == "cache":
        return platformdirs.user_cache_dir("ner-os")
    return platformdirs.user_data_dir("ner-os")


@dataclass(frozen=True)
class Settings:
    """Resolved configuration. Build it with :meth:`Settings.resolve`."""

    # model
    profile: str = "gemma3-270m"
    model: str | None = None  # a local path or hub id overriding the profile's weights
    layer: int | None = None  # None: the profile's default layer
    head: str | None = None  # path to a head directory; None: the head shipped for the profile
    backend: str = "onnx"  # onnx | torch
    device: str = "cpu"  # cpu | cuda
    dtype: str | None = None  # fp32 | fp16 | int8: the documents' encoder (load, eval, train); None: see Settings.numerics
    query_dtype: str | None = None  # the type descriptions' encoder; None: see Settings.query_numerics
    batch_tokens: int = 2048
    spans: str | None = None  # union | encoder | spacy | given; None: union where it fits the encoder, else spacy
    # cluster
    opensearch_url: str | None = None  # None: a local node is started for the user
    index: str = "ner-os"
    index_shards: int | None = None  # primary shards of a new document index (None: 1); each holds its own graphs
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    ca_certs: str | None = None
    client_cert: str | None = None
    client_key: str | None = None
    verify_certs: bool = True
    timeout_s: float = 30.0
    # places on disk
    cache_dir: str = field(default_factory=lambda: _user_dir("cache"))
    data_dir: str = field(default_factory=lambda: _user_dir("data"))

    @classmethod
    def resolve(cls, env: Mapping[str, str] | None = None, **explicit: Any) -> "Settings":
        """Flags (``explicit``, where not None) > ``NER_OS_*`` environment > defaults."""
        env = os.environ if env is None else env
        known = {f.name: f for f in fields(cls)}
        unknown = set(explicit) - set(known)
        if unknown:
            raise TypeError(f"unknown setting(s): {', '.join(sorted(unknown))}")
        values: dict[str, Any] = {}
        for name, spec in known.items():
            if explicit.get(name) is not None:
                values[name] = explicit[name]
                continue
            raw = env.get(ENV_PREFIX + name.upper())
            if raw is not None and raw != "":
                values[name] = _parse(spec, raw)
        return cls(**values)

    def replace(self, **changes: Any) -> "Settings":
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})

    @property
    def numerics(self) -> str:
        """The numerics documents are encoded in (load, eval, train, export): ``dtype`` where set; else the
        profile's measured CPU choice through ONNX (``Profile.cpu_dtype``: int8 for gemma3-270m, within 0.01
        R-Precision of fp32 and 1.7x its speed, bench/int8_quality.py), else fp32. Other weights or another
        layer than the profile's, torch, or a GPU get fp32: the choice was measured for the profile's own."""
        return _checked_dtype(self.dtype, "DTYPE") or self._measured_cpu_dtype() or "fp32"

    @property
    def query_numerics(self) -> str:
        """The numerics type descriptions are encoded in: ``query_dtype`` where set; else, beside fp32
        documents through ONNX on a CPU, the profile's measured choice (a description's time is the weights'
        memory traffic, and int8 reads a quarter of it: bench/query_numerics.py); else :attr:`numerics`."""
        if self.query_dtype is not None:
            return _checked_dtype(self.query_dtype, "QUERY_DTYPE")
        measured = self._measured_cpu_dtype()
        if measured is not None and self.numerics == "fp32":
            return measured
        return self.numerics

    def _measured_cpu_dtype(self) -> str | None:
        try:
            profile = resolve_profile(self.profile, model=self.model, layer=self.layer)
        except ConfigError:  # an incomplete custom profile: said where the encoder is built
            return None
        return measured_cpu_dtype(profile, self.backend, self.device)

    def for_queries(self) -> "Settings":
        """These settings with ``dtype`` the query encoder's (:attr:`query_numerics`)."""
        return dataclasses.replace(self, dtype=self.query_numerics)

    @property
    def cache_path(self) -> Path:
        return Path(self.cache_dir)

    @property
    def data_path(self) -> Path:
        return Path(self.data_dir)

    def describe(self) -> dict[str, Any]:
        """The settings as a dict safe to print or log (secrets masked)."""
        out = dataclasses.asdict(self)
        for name in SECRET_FIELDS:
            if out.get(name):
                out[name] = "***"
        if out.get("opensearch_url"):
            out["opensearch_url"] = redacted_url(out["opensearch_url"])
        return out


def _checked_dtype(value: str | None, env_name: str) -> str | None:
    if value is not None and value not in DTYPES:
        raise ConfigError(f"{env_name.lower()} {value!r} ({ENV_PREFIX}{env_name}): expected one of {', '.join(DTYPES)}")
    return value


def redacted_url(url: str) -> str:
    """The URL as it may be shown: a ``user:password@`` part is masked."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    host = f"[{host}]" if ":" in host else host
    netloc = f"***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


SECRET_FLAGS = ("--password",)  # a flag whose value is a secret, whatever command takes it
_URL_CREDENTIALS = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.-]*://)[^/\s@]*@")


def redacted_text(text: str) -> str:
    """``text`` with the ``user:password@`` part of every URL in it masked."""
    return _URL_CREDENTIALS.sub(r"\g<scheme>***@", text)


def redacted_command(argv: Sequence[str]) -> str:
    """A command line as it may be shown or recorded: URL credentials and ``--password`` values masked."""
    shown: list[str] = []
    secret_next = False
    for arg in argv:
        if secret_next:
            shown.append("***")
            secret_next = False
            continue
        flag, equals, _ = arg.partition("=")
        if flag in SECRET_FLAGS:
            shown.append(f"{flag}=***" if equals else arg)
            secret_next = not equals
            continue
        shown.append(redacted_text(arg))
    return " ".join(shown)


def _parse(spec: dataclasses.Field, raw: str) -> Any:
    kind = str(spec.type)
    name = ENV_PREFIX + spec.name.upper()
    if "bool" in kind:
        lowered = raw.strip().lower()
        if lowered in {"1", "true", "yes", "on"}:
            return True
        if lowered in {"0", "false", "no", "off"}:
            return False
        raise ValueError(f"{name}={raw!r}: expected true or false")
    if "int" in kind:
        try:
            return int(raw)
        except ValueError:
            raise ValueError(f"{name}={raw!r}: expected an integer") from None
    if "float" in kind:
        try:
            return float(raw)
        except ValueError:
            raise ValueError(f"{name}={raw!r}: expected a number") from None
    return raw
