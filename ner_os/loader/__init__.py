"""The load stage: documents (a JSONL corpus, or records in memory) -> spans -> vectors -> OpenSearch.

``api`` (load, load_records), ``records`` (the line parser), ``sources`` (a file's or the records'
numbered lines), ``ledger`` (Mark, LineLedger, RejectLog), ``checkpoint``, ``batches`` (Reader,
plan_batches), ``steps`` (spans and vectors), ``writer`` (BulkWriter, document_source), ``target``
(ClusterTarget, over ner_os.store), ``stages`` (Stages, StageClock, Progress), ``summary`` (LoadSummary).
"""

from ner_os.loader.api import load, load_records
from ner_os.loader.summary import LoadSummary

__all__ = ["load", "load_records", "LoadSummary"]
