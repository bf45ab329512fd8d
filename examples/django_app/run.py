"""Drive the Django view through Django's test client: ``python -m examples.django_app.run``."""

from __future__ import annotations

from typing import Any

from examples._local import callback_result, local_stack, poll_progress
from examples.django_app import web  # noqa: F401 - configures Django before the test client is imported
from examples.django_app.tasks import app
from mageflow_celery import SwarmResult


def main() -> dict[str, Any]:
    from django.test import Client

    with local_stack(app):
        client = Client()
        emails = [f"user{i}@example.com" for i in range(5)]
        started = client.post("/swarms", {"cohort": "2026-W48", "emails": emails}, content_type="application/json")
        swarm_id = started.json()["swarm_id"]
        print(f"POST /swarms -> {started.status_code} {started.json()}")
        url = f"/swarms/{swarm_id}"
        final = poll_progress(lambda: client.get(url).json())
        print(f"GET {url} -> {final['state']}: {final['succeeded']}/{final['total']} emails")
        onboarded = callback_result(app, swarm_id)
        print(f"callback: {onboarded}")
        message_ids = SwarmResult(swarm_id, app=app).get(timeout=30)
        return {"swarm_id": swarm_id, "progress": final, "message_ids": message_ids, "onboarded": onboarded}


if __name__ == "__main__":
    main()
