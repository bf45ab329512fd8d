"""Drive the Flask app through its test client: ``python -m examples.flask_app.run``."""

from __future__ import annotations

from typing import Any

from examples._local import callback_result, local_stack, poll_progress
from examples.flask_app.tasks import app
from examples.flask_app.web import web
from mageflow_celery import SwarmResult


def main() -> dict[str, Any]:
    with local_stack(app):
        client = web.test_client()
        images = [f"IMG_{i:04d}.jpg" for i in range(7)]
        started = client.post("/swarms", json={"album": "holidays", "images": images, "size": 256})
        swarm_id = started.get_json()["swarm_id"]
        print(f"POST /swarms -> {started.status_code} {started.get_json()}")
        url = f"/swarms/{swarm_id}"
        final = poll_progress(lambda: client.get(url).get_json())
        print(f"GET {url} -> {final['state']}: {final['succeeded']}/{final['total']} thumbnails")
        gallery = callback_result(app, swarm_id)
        print(f"callback: {gallery}")
        thumbnails = SwarmResult(swarm_id, app=app).get(timeout=30)
        return {"swarm_id": swarm_id, "progress": final, "thumbnails": thumbnails, "gallery": gallery}


if __name__ == "__main__":
    main()
