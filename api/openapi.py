"""The OpenAPI document and its page: our error bodies on each route, what Litestar 2.x cannot be
told about our bodies, and the docs page served from local assets (no CDN).

The document is at /schema/openapi.json; the Redoc page at /schema loads its script from
/schema/assets.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from litestar.datastructures import CacheControlHeader
from litestar.openapi import OpenAPIConfig
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.plugins import JsonRenderPlugin, RedocRenderPlugin
from litestar.openapi.spec import OpenAPI
from litestar.router import Router
from litestar.static_files import create_static_files_router

from api.schemas import (
    FieldError,
    ScheduleChange,
    ScheduleCreate,
    StateError,
    TaskChange,
    TaskCreate,
    TaskItem,
)

ASSETS_DIR = Path(__file__).resolve().parent / "docs_assets"
ASSETS_PATH = "/schema/assets"


def _spec(container: Any, description: str) -> ResponseSpec:
    # No generated examples: polyfactory's random strings would land in the shared components.
    return ResponseSpec(data_container=container, description=description, generate_examples=False)


_RESPONSES: dict[int, ResponseSpec] = {
    400: _spec(FieldError, "The request is malformed; `field` names the part at fault, if one."),
    404: _spec(FieldError, "No such task."),
    409: _spec(
        StateError | FieldError,
        "The task's state forbids this (`status` names it), or the task under the idempotency "
        "key was being removed: send the request again.",
    ),
    413: _spec(FieldError, "The payload or the body is over its size limit."),
    415: _spec(FieldError, "Content-Type is not application/json."),
    422: _spec(FieldError, "An unknown task type."),
    503: _spec(
        FieldError,
        "The database did not answer in time; try again after Retry-After seconds. A write may "
        "or may not have happened: repeat it with the same Idempotency-Key.",
    ),
}


def errors(*codes: int) -> dict[int, ResponseSpec]:
    """`responses=` for a route's errors; ours replace Litestar's default 400 body."""
    return {code: _RESPONSES[code] for code in codes}


# Bodies that hold no other fields (requests refuse them; the error bodies never have them):
# Litestar does not say so in the schema.
_STRICT = frozenset(
    struct.__name__
    for struct in (
        TaskItem,
        TaskCreate,
        TaskChange,
        ScheduleCreate,
        ScheduleChange,
        FieldError,
        StateError,
    )
    if struct.__struct_config__.forbid_unknown_fields
)
_DEFAULT_400 = "Validation Exception"  # the description of Litestar's {status_code, detail, extra}


def tidy(doc: dict[str, Any], task_types: frozenset[str]) -> dict[str, Any]:
    """What Litestar 2.25 cannot be told: no default 400 body left anywhere (a route with
    parameters gets one), `additionalProperties: false` on the strict bodies, and the task types
    this server accepts (any other answers 422)."""
    for path_item in doc.get("paths", {}).values():
        for operation in path_item.values():
            if not isinstance(operation, dict):
                continue
            responses = operation.get("responses", {})
            schema = (
                responses.get("400", {}).get("content", {}).get("application/json", {})
                or {"schema": {}}
            )["schema"]
            if schema.get("description") == _DEFAULT_400:
                responses["400"] = {
                    "description": _RESPONSES[400].description,
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/FieldError"}}
                    },
                }
    schemas = doc.get("components", {}).get("schemas", {})
    for name in _STRICT & schemas.keys():
        schemas[name]["additionalProperties"] = False
    for name in ("TaskItem", "TaskCreate", "ScheduleCreate", "ScheduleChange"):
        if name in schemas:
            schemas[name]["properties"]["task_type"]["enum"] = sorted(task_types)
    for name in ("TaskChange", "ScheduleChange"):
        if name in schemas:
            schemas[name]["minProperties"] = 1  # an empty change is refused
    return doc


@dataclass
class _TidyOpenAPI(OpenAPI):
    task_types: frozenset[str] = frozenset()

    def to_schema(self) -> dict[str, Any]:
        doc = super().to_schema()
        doc.pop("task_types", None)  # a field of ours, not of the document
        return tidy(doc, self.task_types)


@dataclass
class _Config(OpenAPIConfig):
    """Passes the document through tidy(): the JSON, and the page that embeds it."""

    task_types: frozenset[str] = frozenset()

    def to_openapi_schema(self) -> OpenAPI:
        base = super().to_openapi_schema()
        fields = {name: getattr(base, name) for name in base.__dataclass_fields__}
        return _TidyOpenAPI(**fields, task_types=self.task_types)


def openapi_config(version: str, task_types: frozenset[str]) -> OpenAPIConfig:
    return _Config(
        task_types=task_types,
        title="duetime",
        version=version,
        path="/schema",
        render_plugins=[
            RedocRenderPlugin(
                js_url=f"{ASSETS_PATH}/redoc.standalone.js",
                google_fonts=False,
                favicon="",
                path=["/", "/redoc"],
            ),
            JsonRenderPlugin(),
        ],
    )


def assets_router() -> Router:
    return create_static_files_router(
        path=ASSETS_PATH,
        directories=[ASSETS_DIR],
        name="docs-assets",
        include_in_schema=False,
        cache_control=CacheControlHeader(max_age=86400, public=True),
    )
