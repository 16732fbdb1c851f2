"""The OpenAPI 3.1 document of the hub, built from the endpoint table and the API models.

Nothing here is written twice: paths, methods, access, parameters and media types come
from ``hub.app.ENDPOINTS``; body schemas are the pydantic models' own JSON schemas (by
alias, as they go over the wire).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import pydantic
from pydantic.json_schema import models_json_schema

from fleet import __version__
from hub import api

if TYPE_CHECKING:
    from hub.app import Endpoint

_REF = "#/components/schemas/{model}"
_PATH_PARAMETER = re.compile(r"{(\w+)}")
_ERROR_TEXT = {
    400: "Bad request",
    401: "Missing, unknown or revoked token (webhooks: bad or missing signature)",
    403: "The token may not do this",
    404: "Not found",
    408: "The request body did not arrive within limits.bodyTimeout",
    409: "Conflict: a webhook delivery already received; a wave action with nothing to do",
    413: "Body too large",
    422: "Body does not match the schema (or names an unknown revision)",
    429: "Over this token's limit (ingest rate, open streams); retry after Retry-After seconds",
    502: "The Git server refused or failed",
    503: "Database unavailable",
}
_ACCESS_TEXT = {
    "public": "No token needed.",
    "read": "Needs a user token (role read-only or admin).",
    "admin": "Needs a user token with role admin.",
    "cluster": "Needs the token of the cluster named in the path.",
    "signature": "Authenticated by the provider's signature or token, not by a bearer token.",
}


def _models(endpoints: Sequence[Endpoint]) -> list[type[pydantic.BaseModel]]:
    found: list[type[pydantic.BaseModel]] = [api.ErrorBody]
    for endpoint in endpoints:
        for model in (endpoint.request, endpoint.response, *endpoint.stream_events.values()):
            if model is not None and model not in found:
                found.append(model)
    return found


def _ref(model: type[pydantic.BaseModel]) -> dict[str, str]:
    return {"$ref": _REF.format(model=model.__name__)}


def _operation(endpoint: Endpoint) -> dict[str, Any]:
    parameters: list[dict[str, Any]] = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in _PATH_PARAMETER.findall(endpoint.path)
    ]
    parameters += [
        {
            "name": name,
            "in": "query",
            "required": False,
            "schema": {"type": kind},
            "description": text,
        }
        for name, kind, text in endpoint.query
    ]
    if endpoint.stream_events:
        parameters.append(
            {
                "name": "Last-Event-ID",
                "in": "header",
                "required": False,
                "schema": {"type": "string"},
                "description": "Resume after this event id.",
            }
        )
    content: dict[str, Any]
    if endpoint.response is not None:
        content = {endpoint.media_type: {"schema": _ref(endpoint.response)}}
    elif endpoint.stream_events:
        events = ", ".join(
            f"`{name}` ({model.__name__ if model else 'data {}'})"
            for name, model in endpoint.stream_events.items()
        )
        content = {
            endpoint.media_type: {
                "schema": {"type": "string", "description": f"Server-sent events: {events}."}
            }
        }
    else:
        content = {
            endpoint.media_type: {
                "schema": {"type": "string" if "text" in endpoint.media_type else "object"}
            }
        }
    responses: dict[str, Any] = {str(endpoint.status): {"description": "OK", "content": content}}
    errors = list(endpoint.errors)
    if endpoint.access in ("read", "admin", "cluster"):
        errors += [401, 403]
    elif endpoint.access == "signature":
        errors += [401]
    for status in sorted(set(errors)):
        responses[str(status)] = {
            "description": _ERROR_TEXT.get(status, "Error"),
            "content": {"application/json": {"schema": _ref(api.ErrorBody)}},
        }
    operation: dict[str, Any] = {
        "operationId": _operation_id(endpoint),
        "summary": endpoint.summary,
        "description": " ".join(
            filter(None, (endpoint.description, _ACCESS_TEXT[endpoint.access]))
        ),
        "parameters": parameters,
        "responses": responses,
    }
    if endpoint.access in ("read", "admin", "cluster"):
        operation["security"] = [{"bearer": []}]
    else:
        operation["security"] = []
    if endpoint.request is not None:
        operation["requestBody"] = {
            "required": endpoint.method == "PUT",
            "content": {"application/json": {"schema": _ref(endpoint.request)}},
        }
    return operation


def _operation_id(endpoint: Endpoint) -> str:
    return endpoint.handler.__name__.strip("_")


def document(endpoints: Sequence[Endpoint]) -> dict[str, Any]:
    """The whole OpenAPI document."""
    models = _models(endpoints)
    _, schemas = models_json_schema(
        [(model, "serialization") for model in models], by_alias=True, ref_template=_REF
    )
    paths: dict[str, dict[str, Any]] = {}
    for endpoint in endpoints:
        paths.setdefault(endpoint.path, {})[endpoint.method.lower()] = _operation(endpoint)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "fleet hub",
            "version": __version__,
            "description": "Fleet health from the agents' reports; commands back to them over "
            "streams they open; push webhooks.",
        },
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {
            "schemas": schemas.get("$defs", {}),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }
