"""Batch processing with error tolerance (the seed guide's third use case): process many records, 20 at
a time; a batch with a few bad records still completes and gets its report, a batch with 50 bad records
stops at once and raises an alert with the failure summary.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from examples._local import make_app
from mageflow_celery import Mageflow, ReturnValue

app = make_app("batch_tolerance")
mf = Mageflow(app)


class BadRecordError(Exception):
    """A record that cannot be processed (an expected, data-level failure)."""


class BatchMessage(BaseModel):
    """The swarm's message, merged into every record task's kwargs."""

    batch: str
    #: Every n-th record of this batch is corrupt (0: none). Stands for the state of the upstream data.
    corrupt_every: int = 0


class RecordMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")
    record_id: int
    batch: str
    corrupt_every: int = 0


class CompletionReport(BaseModel):
    model_config = ConfigDict(extra="ignore")
    results: ReturnValue[list[int]]
    expected: int


# ``throws``: a bad record is an expected failure, logged in one line instead of with a traceback.
@mf.task(name="process-record", throws=(BadRecordError,))
def process_record(msg: RecordMessage) -> int:
    """Process one record; return its (made-up) amount."""
    if msg.corrupt_every and msg.record_id % msg.corrupt_every == 0:
        raise BadRecordError(f"record {msg.record_id} of {msg.batch}: checksum mismatch")
    return msg.record_id * 10


@mf.task(name="generate-completion-report")
def generate_completion_report(msg: CompletionReport) -> dict[str, int]:
    """Success callback: runs when every record finished and fewer than 50 failed."""
    return {"processed": len(msg.results), "failed": msg.expected - len(msg.results), "amount": sum(msg.results)}


@app.task(name="send-failure-alert", shared=False)
def send_failure_alert(summary: dict[str, Any]) -> str:
    """Error callback: receives the failure summary (counts and the first failed members)."""
    first = summary["failures"][0]
    return (
        f"ALERT batch swarm {summary['name']}: {summary['failed']} records failed "
        f"(limit {summary['stop_after_n_failures']}), {summary['succeeded']} succeeded, "
        f"{summary['cancelled']} never ran; first error: {first['exc_type']}: {first['message']}"
    )
