"""Two tenants call one rate-limited external API through one shared pool: at most 2 calls in flight and
at most 20 calls a second over all tenants and workers, whoever starts the swarms."""

from __future__ import annotations

import time

from examples._local import make_app

app = make_app("shared_api")

#: The pool every call to the geocoding API holds a token of: 2 at a time, 20 a second (SPEC F1, F3).
app.conf.mageflow_pools = {"geo-api": {"limit": 2, "rate_limit": "20/s"}}


@app.task(name="shared_api.geocode")
def geocode(tenant: str, address: int) -> tuple[str, int, float, float]:
    """Call the external API for one address (here: a short sleep); returns who called and when."""
    started = time.time()
    time.sleep(0.08)
    return tenant, address, started, time.time()
