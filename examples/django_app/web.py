"""A single-file Django project: ``POST /swarms`` starts a swarm once the request's transaction commits and
returns its id; ``GET /swarms/<id>`` returns its progress.

Served for real (needs ``REDIS_URL`` and a worker, see README.md):
``python -m examples.django_app.web runserver``.
"""

from __future__ import annotations

import json
import sys

import django
from django.conf import settings
from django.db import transaction
from django.http import HttpRequest, JsonResponse
from django.urls import path
from django.views.decorators.http import require_GET, require_POST

from examples.django_app.tasks import app as celery_app
from examples.django_app.tasks import cohort_onboarded, send_welcome_email
from mageflow_celery import SwarmConfig, SwarmNotFoundError, SwarmResult, swarm

if not settings.configured:
    settings.configure(
        DEBUG=False,
        SECRET_KEY="example-only-not-secret",
        ALLOWED_HOSTS=["testserver", "localhost", "127.0.0.1"],
        ROOT_URLCONF="examples.django_app.web",
        DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
        INSTALLED_APPS=[],
        MIDDLEWARE=[],
        USE_TZ=True,
        LOGGING_CONFIG=None,
    )
    django.setup()


@require_POST
def start_swarm(request: HttpRequest) -> JsonResponse:
    """Body: ``{"cohort": "...", "emails": ["a@example.com", ...]}``."""
    body = json.loads(request.body)
    welcome = swarm(
        tasks=[send_welcome_email.s(email) for email in body["emails"]],
        success_callbacks=[cohort_onboarded.s(cohort=body["cohort"])],
        config=SwarmConfig(max_concurrency=2),
        is_swarm_closed=True,
        task_name=f"welcome:{body['cohort']}",
        app=celery_app,
    )
    with transaction.atomic():
        # Save the rows the workers will read here (e.g. the users, the cohort with the swarm id); the swarm
        # starts only if this transaction commits, so no member can run before its data is visible. The id
        # is known at once (no I/O).
        swarm_id = welcome.apply_async_on_commit(kwargs={"template": "welcome-v2"}).id
    return JsonResponse({"swarm_id": swarm_id}, status=202)


@require_GET
def swarm_progress(request: HttpRequest, swarm_id: str) -> JsonResponse:
    """State and counts per member state; 404 for an unknown id."""
    try:
        progress = SwarmResult(swarm_id, app=celery_app).progress()
    except SwarmNotFoundError:
        return JsonResponse({"error": f"no swarm {swarm_id}"}, status=404)
    return JsonResponse(progress.model_dump())


urlpatterns = [
    path("swarms", start_swarm),
    path("swarms/<str:swarm_id>", swarm_progress),
]

if __name__ == "__main__":
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
