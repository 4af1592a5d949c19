"""Errors meant for the user: the CLI prints their message on one line, with no stack trace."""


class NerOsError(Exception):
    """A problem the user can fix (bad input, a missing model, an unreachable cluster)."""


class ConfigError(NerOsError):
    """Settings that do not fit together, or a file that does not match the request."""


class ClusterError(NerOsError):
    """OpenSearch is unreachable, refuses the request, or lacks what ner-os needs."""


class BrokenInputError(NerOsError):
    """The input breaks off (a truncated or corrupt gzip): the lines before the break were loaded,
    and ``summary`` (a :class:`ner_os.loader.summary.LoadSummary`) says what they gave."""

    def __init__(self, message: str, summary=None):
        super().__init__(message)
        self.summary = summary
