"""Tasks for the Django example: welcome each new user, then record that the cohort is onboarded."""

from __future__ import annotations

from examples._local import make_app
from mageflow_celery import ReturnValue

app = make_app("django_app")


@app.task(name="send-welcome-email", shared=False)
def send_welcome_email(email: str, template: str = "welcome-v1") -> str:
    """Stands for rendering and sending one email; returns a fake message id."""
    return f"<{template}.{email.replace('@', '.at.')}@mail.example>"


@app.task(name="cohort-onboarded", shared=False)
def cohort_onboarded(message_ids: ReturnValue[list[str]], cohort: str) -> str:
    """Success callback: receives every message id, in signup order."""
    return f"cohort {cohort}: {len(message_ids)} welcome email(s) sent"
