"""The fleet hub: status ingest and store, fleet health, webhooks, notifications, streams.

Agents push their ``ClusterReport`` (``PUT /api/v1/clusters/{name}/report``) and keep an
outbound command stream open; the hub never connects into a cluster. Quick start::

    fleet hub token create --user alice --role admin --db sqlite:///hub.db   # prints a token
    fleet hub token create dev --label env=dev --db sqlite:///hub.db         # the agent's
    fleet hub serve --db sqlite:///hub.db --listen 127.0.0.1:8080 [--config hub.yaml]
    fleet get clusters --hub http://127.0.0.1:8080 --token-file alice.token

Layout: ``app`` (routes, one endpoint table that also yields ``/api/v1/openapi.json``),
``service`` (what the routes do), ``store`` (SQLite or PostgreSQL), ``auth`` (tokens),
``webhooks`` (signatures, push matching), ``notify`` (alerts to any fleet.notify provider type),
``metrics`` (Prometheus), ``config`` (``hub.yaml``), ``server`` (uvicorn, TLS).
"""
