"""Run the per-customer example end to end: ``python -m examples.per_customer.run``."""

from __future__ import annotations

from examples._local import callback_result, local_stack, wait_with_progress
from examples.per_customer.tasks import app, summary, sync_record
from mageflow_celery import SwarmConfig, SwarmResult, swarm

CUSTOMERS = {"acme": 5, "globex": 3, "initech": 4, "umbrella": 2}
RUN = "2026-11-30"


def customer_swarm(name: str, records: int, failing: bool = False) -> object:
    """One customer's swarm: its own limit (2 calls at a time), failing at its first error."""
    return swarm(
        tasks=[sync_record.s(name, i, fail=failing and i == 1) for i in range(records)],
        config=SwarmConfig(max_concurrency=2, stop_after_n_failures=1),
        is_swarm_closed=True,
        task_name=f"customer:{name}",
    )


def main() -> dict[str, object]:
    with local_stack(app, concurrency=8):
        customers = [customer_swarm(name, n, failing=name == "umbrella") for name, n in CUSTOMERS.items()]
        nightly = swarm(
            tasks=customers,
            success_callbacks=[summary.s(run=RUN)],
            config=SwarmConfig(max_concurrency=2, results="aligned"),  # two customers at a time
            is_swarm_closed=True,
            task_name="nightly-sync",
            app=app,
        )
        result = nightly.apply_async(kwargs={"run": RUN})  # reaches every customer's records
        wait_with_progress(result)
        per_customer = result.get(timeout=60)
        for member in result.members():
            nested = SwarmResult(member.task_id, app=app).progress()
            print(f"  {member.name:<18} {member.state:<9} {nested.succeeded}/{nested.total} records")
        line = callback_result(app, result.id)
        print(line)
        return {"per_customer": per_customer, "summary": line, "members": [m.state for m in result.members()]}


if __name__ == "__main__":
    main()
