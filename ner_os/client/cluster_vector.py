"""A description's type vector made where the index's queries make it, for storing (a registered type).

With ``embedding`` auto and a model deployed for the index (or ``cluster``), the same rule as
:meth:`ner_os.client.NerOs.query_vector`: ML Commons embeds the words (``_predict``) and no model
loads here; the vectors' identity is the one the deployment recorded on the index. Otherwise the
local :meth:`~ner_os.client.NerOs.index_type_vector` and the local embedder's identity.
"""

from __future__ import annotations

from typing import Any

from ner_os import query as q
from ner_os.checks import check_vector
from ner_os.store import ml


def stored_type_vector(ner, description: str, index: str | None = None) -> tuple[list[float], dict[str, Any] | None]:
    """(the description's unit vector for ``index``, what made it: ``MentionEmbedder.identity()``)."""
    wanted = ner.query_vector(description, index)
    if not isinstance(wanted, q.NeuralText):
        return wanted, ner.encoder_identity()
    index = ner.index_name(index)
    (vector,) = ml.predict(ner.opensearch, wanted.model_id, [wanted.text])
    recorded = ml.index_model(ner.opensearch, index) or {}
    return check_vector(vector, ner.vector_dimension(index)), recorded.get("vectors")
