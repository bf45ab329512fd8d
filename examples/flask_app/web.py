"""A Flask app: ``POST /swarms`` starts a swarm and returns its id, ``GET /swarms/<id>`` its progress.

Served for real (needs ``REDIS_URL`` and a worker, see README.md):
``flask --app examples.flask_app.web run``.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, abort, request

from examples.flask_app.tasks import app as celery_app
from examples.flask_app.tasks import make_thumbnail, publish_gallery
from mageflow_celery import SwarmConfig, SwarmNotFoundError, SwarmResult, swarm

web = Flask(__name__)


@web.post("/swarms")
def start_swarm() -> tuple[dict[str, str], int]:
    """Body: ``{"album": "...", "images": ["a.jpg", ...], "size": 128}``; 400 when it is not that."""
    body = request.get_json(force=True, silent=True)
    if (
        not isinstance(body, dict)
        or not isinstance(body.get("album"), str)
        or not isinstance(body.get("images"), list)
        or not all(isinstance(image, str) for image in body["images"])
    ):
        abort(400, description='expected {"album": "...", "images": ["a.jpg", ...], "size": 128}')
    thumbnails = swarm(
        tasks=[make_thumbnail.s(image) for image in body["images"]],
        success_callbacks=[publish_gallery.s(album=body["album"])],
        config=SwarmConfig(max_concurrency=3),
        is_swarm_closed=True,
        task_name=f"thumbnails:{body['album']}",
        app=celery_app,
    )
    result = thumbnails.apply_async(kwargs={"size": int(body.get("size", 128))})
    return {"swarm_id": result.id}, 202


@web.get("/swarms/<swarm_id>")
def swarm_progress(swarm_id: str) -> dict[str, Any]:
    """State and counts per member state; 404 for an unknown id."""
    try:
        return SwarmResult(swarm_id, app=celery_app).progress().model_dump()
    except SwarmNotFoundError:
        abort(404, description=f"no swarm {swarm_id}")
