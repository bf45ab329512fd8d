"""Run the file-processing swarm end to end: ``python -m examples.file_processing.run``."""

from __future__ import annotations

import random
import tempfile
from pathlib import Path

from examples._local import local_stack, wait_with_progress
from examples.file_processing.tasks import ProcessingMessage, app
from mageflow_celery import SwarmConfig, swarm


def write_files(folder: Path, count: int = 8) -> list[Path]:
    rng = random.Random(7)
    paths = []
    for i in range(count):
        path = folder / f"file{i}.csv"
        lines = ["id,amount", *(f"{j},{rng.randint(1, 100)}" for j in range(10 + i))]
        path.write_text("\n".join(lines) + "\n")
        paths.append(path)
    return paths


def main() -> dict[str, object]:
    with local_stack(app), tempfile.TemporaryDirectory() as tmp:
        paths = write_files(Path(tmp))
        file_swarm = swarm(
            tasks=[app.signature("process-csv-file", kwargs={"file_path": str(p)}) for p in paths],
            success_callbacks=[app.signature("consolidate-results")],
            error_callbacks=[app.signature("handle-file-errors")],
            config=SwarmConfig(max_concurrency=3, stop_after_n_failures=2),
            is_swarm_closed=True,
            task_name="file-processing",
            app=app,
        )
        result = file_swarm.delay(ProcessingMessage(delimiter=","))
        wait_with_progress(result)
        per_file = result.get(timeout=60)
        progress = result.progress()
        print(f"swarm {result.id}: {progress.succeeded}/{progress.total} files processed, 3 at a time")
        for summary in per_file:
            print(f"  {summary['file']}: {summary['rows']} rows, total {summary['total']}")
        report = app.AsyncResult(f"{result.id}~s0").get(timeout=30)
        print(f"consolidated: {report}")
        return report  # type: ignore[no-any-return]


if __name__ == "__main__":
    main()
