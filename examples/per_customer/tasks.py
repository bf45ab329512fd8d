"""A swarm of per-customer swarms: each customer's API calls are limited on their own (2 at a time), and
the outer swarm limits how many customers are served at once (2). A customer's result in the outer list
is that customer's own result list; one failing customer is one failed member of the outer swarm."""

from __future__ import annotations

import time

from examples._local import make_app

app = make_app("per_customer")


@app.task(name="per_customer.sync_record")
def sync_record(customer: str, record: int, fail: bool = False, run: str = "") -> str:
    """Push one of a customer's records to a rate-sensitive partner API (here: a short sleep)."""
    time.sleep(0.02)
    if fail:
        raise ConnectionError(f"partner API refused {customer}/{record}")
    return f"{customer}/{record}@{run}"


@app.task(name="per_customer.summary")
def summary(per_customer: list[list[str] | None], run: str = "") -> str:
    """The outer swarm's success callback: one line about every customer."""
    synced = [len(records) if records is not None else "failed" for records in per_customer]
    return f"run {run}: records synced per customer {synced}"
