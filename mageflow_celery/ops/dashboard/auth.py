"""The bearer token that guards the dashboard's actions.

Actions need ``Authorization: Bearer <token>``; the token is compared in constant time. It is never a
cookie, so a page of another site cannot make a browser send it (no CSRF). Without a configured token,
actions are refused (403) and the pages say so.

Layer: ``ops`` (see ``docs/architecture.md``).
"""

from __future__ import annotations

import hmac

from starlette.requests import Request
from starlette.responses import JSONResponse

#: Environment variable the ``celery swarm dashboard`` command reads the token from.
TOKEN_ENV = "MAGEFLOW_DASHBOARD_TOKEN"


def refusal(request: Request, token: str | None) -> JSONResponse | None:
    """``None`` when the request carries the token, else the response refusing it (401 or 403)."""
    if not token:
        return JSONResponse(
            {"error": "actions are disabled: the dashboard was started without a token (--token)"}, status_code=403
        )
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        return JSONResponse(
            {"error": "this action needs the header 'Authorization: Bearer <token>'"},
            status_code=401,
            headers={"WWW-Authenticate": 'Bearer realm="mageflow"'},
        )
    if not hmac.compare_digest(given.strip().encode(), token.encode()):
        return JSONResponse({"error": "wrong token"}, status_code=403)
    return None
