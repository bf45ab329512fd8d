"""Parallel file processing (the seed guide's first use case): process CSV files, 3 at a time,
then consolidate the per-file results; a failure handler runs if too many files fail."""

from __future__ import annotations

import csv
import time
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from examples._local import make_app
from mageflow_celery import ReturnValue

app = make_app("file_processing")


class ProcessingMessage(BaseModel):
    """The swarm's message, merged into every member's kwargs."""

    model_config = ConfigDict(extra="ignore")
    delimiter: str = ","


@app.task(name="process-csv-file", shared=False)
def process_csv_file(file_path: str, delimiter: str = ",") -> dict[str, object]:
    """Sum the ``amount`` column of one CSV file."""
    started = time.time()
    with Path(file_path).open(newline="") as fh:
        rows = list(csv.DictReader(fh, delimiter=delimiter))
    time.sleep(max(0.0, 0.05 - (time.time() - started)))  # pretend it is real work
    total = sum(float(r["amount"]) for r in rows)
    return {"file": Path(file_path).name, "rows": len(rows), "total": total}


@app.task(name="consolidate-results", shared=False)
def consolidate_results(results: ReturnValue[list[dict[str, object]]]) -> dict[str, object]:
    """Success callback: receives every file's summary, in the order the files were given."""
    return {
        "files": len(results),
        "rows": sum(int(str(r["rows"])) for r in results),
        "total": sum(float(str(r["total"])) for r in results),
    }


@app.task(name="handle-file-errors", shared=False)
def handle_file_errors(summary: dict[str, object]) -> str:
    """Error callback: receives the failure summary."""
    return f"{summary['failed']} file(s) failed in swarm {summary['swarm_id']}"
