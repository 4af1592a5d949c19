"""The type encoder inside OpenSearch: the type-vector graph, its tokenizer, the ML Commons deployment.

``graph`` (token ids -> value vectors -> last token -> head -> unit vector, composed onto the
export), ``tokenizer`` (tokenizer.json reading a description as ``embed_type`` does), ``model``
(the package ML Commons takes, built once and checked for parity), ``api`` (``deploy_type_model``).
The REST calls live in :mod:`ner_os.store.ml`.
"""

from ner_os.deploy.api import DeployedModel, deploy_after_load, deploy_type_model
from ner_os.deploy.model import TypeVectorPackage, ensure_package

__all__ = ["DeployedModel", "deploy_after_load", "TypeVectorPackage", "deploy_type_model", "ensure_package"]
