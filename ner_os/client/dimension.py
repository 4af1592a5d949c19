"""The size of the vectors an index stores: what the head in use puts out."""

from __future__ import annotations

from ner_os.config import Settings
from ner_os.errors import NerOsError
from ner_os.head import ProjectionHead, shipped_head_path
from ner_os.profiles import resolve_profile


def head_output_dimension(settings: Settings) -> int:
    """The head's output size: the --head directory, else the head shipped for the profile, else the
    profile's raw value size (no head)."""
    if settings.head and settings.head.lower() != "none":
        return ProjectionHead.load(settings.head).out_dim
    shipped = shipped_head_path(settings.profile) if not settings.head else None
    if shipped is not None:
        return ProjectionHead.load(shipped).out_dim
    profile = resolve_profile(settings.profile)
    if profile.d_v is None:
        raise NerOsError(f"profile {profile.name} does not state its vector size; pass --dimension")
    return profile.d_v
