"""The OpenAPI 3.1 document of the read API, built from the tenants file and the data dictionary: one path per dataset
any tenant is granted, its fields (the union of the grants, each described by the dictionary), the parameters,
every answer format and every error answer."""

from __future__ import annotations

from typing import Any

from ticklake.dictionary import Field
from ticklake.products.query import MAX_SYMBOLS
from ticklake.products.tenants import Tenants

_JSON_TYPES = {"string": {"type": "string"}, "date": {"type": "string", "format": "date"},
               "float64": {"type": "number"}, "int64": {"type": "integer"}, "bool": {"type": "boolean"},
               "timestamp": {"type": "string", "format": "date-time"}}

ERRORS = {
    "400": "The request is malformed (an unknown parameter or field, a bad date, too many symbols): `rule` says "
           "what is wrong and how to ask instead",
    "401": "No API key, or not a valid one (`Authorization: Bearer <key>`)",
    "403": "The request asks for a dataset, field, region or date outside the tenant's grant: `rule` names the grant",
    "404": "No such route",
    "429": "The tenant is over its rate limit: retry after `Retry-After` seconds",
    "500": "An internal error: quote `trace_id` to the lake's operators",
    "503": "The lake cannot be read now: `rule` names the setting to check",
}


def _error_schema() -> dict:
    return {"type": "object", "required": ["error"], "properties": {"error": {
        "type": "object", "required": ["status", "rule", "trace_id"],
        "properties": {"status": {"type": "integer"}, "rule": {"type": "string"}, "trace_id": {"type": "string"}}}}}


def _field_schema(f: Field) -> dict:
    schema = dict(_JSON_TYPES[f.type])
    schema["description"] = f.doc
    return {**schema, "type": [schema["type"], "null"]} if f.nullable or f.type == "float64" else schema


def document(tenants: Tenants) -> dict[str, Any]:
    granted: dict[str, dict[str, Field]] = {}
    descriptions: dict[str, str] = {}
    for tenant in tenants:
        for name, product in tenant.products.items():
            fields = granted.setdefault(name, {})
            for f in product.fields:
                fields.setdefault(f, product.table.field(f))
            descriptions.setdefault(name, product.table.description)
    paths: dict[str, Any] = {}
    for name in sorted(granted):
        fields = granted[name]
        params = [
            _param("fields", "Comma-separated fields to return, in this order (default: every field your grant "
                             "holds). Granted to some tenant: " + ", ".join(fields),
                   {"type": "string", "pattern": r"^[a-z][a-z0-9_]*(,[a-z][a-z0-9_]*)*$"}),
            _param("symbols", f"Comma-separated instrument codes (at most {MAX_SYMBOLS}; default: every symbol)",
                   {"type": "string"}),
            _param("start", "First date (YYYY-MM-DD; default: your window's first)", {"type": "string",
                                                                                       "format": "date"}),
            _param("end", "Last date (YYYY-MM-DD; default: your window's last)", {"type": "string", "format": "date"}),
            _param("regions", "Comma-separated regions (US,HK; default: every region your grant holds)",
                   {"type": "string"}),
            _param("format", "The answer's format", {"type": "string", "enum": ["json", "csv", "parquet"],
                                                     "default": "json"}),
        ]
        row = {"type": "object", "properties": {f: _field_schema(d) for f, d in fields.items()},
               "description": "The requested fields only; prices in USD for a tenant on USD (see `units`)"}
        ok = {"type": "object", "required": ["dataset", "snapshot", "fields", "rows", "data"], "properties": {
            "dataset": {"type": "string"}, "tenant": {"type": "string"},
            "snapshot": {"type": "integer", "description": "The lake snapshot the whole answer was cut from"},
            "regions": {"type": "array", "items": {"type": "string"}},
            "start": {"type": ["string", "null"], "format": "date"}, "end": {"type": ["string", "null"],
                                                                           "format": "date"},
            "fields": {"type": "array", "items": {"type": "string"}},
            "units": {"type": "object", "additionalProperties": {"type": "string"}},
            "rows": {"type": "integer"}, "data": {"type": "array", "items": row}}}
        headers = {"X-Trace-Id": {"schema": {"type": "string"}}, "X-Cache": {"schema": {"type": "string",
                   "enum": ["hit", "miss", "off"]}}, "X-Lake-Snapshot": {"schema": {"type": "integer"}}}
        responses: dict[str, Any] = {"200": {"description": "The rows, from one lake snapshot", "headers": headers,
                                             "content": {"application/json": {"schema": ok},
                                                         "text/csv": {"schema": {"type": "string"}},
                                                         "application/vnd.apache.parquet": {
                                                             "schema": {"type": "string", "format": "binary"}}}}}
        for status, text in ERRORS.items():
            responses[status] = {"description": text, "content": {"application/json": {
                "schema": {"$ref": "#/components/schemas/Error"}}}}
        responses["429"]["headers"] = {"Retry-After": {"schema": {"type": "integer"},
                                                       "description": "Whole seconds until a request is allowed"}}
        paths[f"/v1/{name}"] = {"get": {"operationId": f"get_{name}", "summary": f"Rows of {name}",
                                        "description": descriptions[name], "parameters": params,
                                        "responses": responses, "security": [{"bearer": []}]}}
    paths["/health"] = {"get": {"operationId": "health", "summary": "Whether the lake can be read, and its snapshot",
                                "responses": {"200": {"description": "The lake can be read"},
                                              "503": {"description": ERRORS["503"]}}}}
    return {
        "openapi": "3.1.0",
        "info": {"title": "ticklake read API", "version": "1",
                 "description": "Governed market data within each tenant's grant (the tenants file, "
                                "TICKLAKE_TENANTS). Every answer is cut from one lake snapshot."},
        "paths": paths,
        "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
                       "schemas": {"Error": _error_schema()}},
    }


def _param(name: str, description: str, schema: dict) -> dict:
    return {"name": name, "in": "query", "required": False, "description": description, "schema": schema}
