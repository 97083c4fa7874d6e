"""The OpenAPI 3 document served at /api/openapi.json (hand-written: small API, no generator needed)."""

from __future__ import annotations

from typing import Any

ERROR = {"$ref": "#/components/schemas/Error"}
EVALUATION = {"$ref": "#/components/schemas/Evaluation"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*codes: int) -> dict[str, Any]:
    text = {400: "bad request", 401: "missing or wrong token", 404: "not found", 413: "batch too large",
            415: "unsupported content type", 422: "batch rejected (recorded as a rejected evaluation)",
            409: "batch id already evaluated with other rows, or no reference data for the version",
            500: "internal error",
            503: "a dependency is down"}
    return {str(c): _json(ERROR, text[c]) for c in codes}


def openapi_document(server_url: str) -> dict[str, Any]:
    name = {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}
    batch_body = {"required": True, "content": {
        "application/json": {"schema": {"type": "array", "items": {"type": "object"}},
                             "example": [{"x0": 12.5, "x1": 80.1, "y": 13.0}]},
        "text/csv": {"schema": {"type": "string"}},
        "application/vnd.apache.parquet": {"schema": {"type": "string", "format": "binary"}}}}
    write = [{"bearer": []}]
    return {
        "openapi": "3.0.3",
        "info": {"title": "Driftline monitor", "version": "1.0",
                 "description": "Drift and performance monitoring of registered MLflow models."},
        "servers": [{"url": server_url}],
        "paths": {
            "/healthz": {"get": {"summary": "Process alive", "responses": {"200": {"description": "alive"}}}},
            "/readyz": {"get": {"summary": "Database and tracking server reachable",
                                "responses": {"200": {"description": "ready"}, **_errors(503)}}},
            "/metrics": {"get": {"summary": "Prometheus metrics",
                                 "responses": {"200": {"description": "text exposition format"}}}},
            "/api/models": {"get": {"summary": "Monitored models with their latest status",
                                    "responses": {"200": _json({"type": "object"}, "models")}}},
            "/api/models/{name}/evaluations": {"get": {
                "summary": "A model's evaluations, newest first",
                "parameters": [name] + [{"name": p, "in": "query", "schema": {"type": "integer"}}
                                        for p in ("limit", "before_id", "page", "per_page")]
                + [{"name": "status", "in": "query", "schema": {"type": "string"}}],
                "responses": {"200": _json({"type": "object", "properties": {
                    "evaluations": {"type": "array", "items": EVALUATION},
                    "next": {"type": "string", "nullable": True}}}, "one page"), **_errors(400)}}},
            "/api/evaluations/{id}": {"get": {
                "summary": "One evaluation in full, with per-feature results",
                "parameters": [{"name": "id", "in": "path", "required": True, "schema": {"type": "integer"}}],
                "responses": {"200": _json(EVALUATION, "the evaluation"), **_errors(404)}}},
            "/api/models/{name}/batches": {"post": {
                "summary": "Push a batch (inputs, with or without the target) and evaluate it now",
                "security": write,
                "parameters": [name, {"name": "X-Batch-Id", "in": "header", "schema": {"type": "string"},
                                      "description": "idempotency key: a repeat with the same rows returns "
                                                     "the first result (200), with other rows 409"},
                               {"name": "id_column", "in": "query", "schema": {"type": "string"},
                                "description": "a row id column (not an input), kept to join "
                                               "labels sent later"}],
                "requestBody": batch_body,
                "responses": {"201": _json(EVALUATION, "evaluated"),
                              "200": _json(EVALUATION, "already evaluated"),
                              "202": _json(EVALUATION, "added to the version's reference window, no verdict"),
                              **_errors(400, 401, 404, 409, 413, 415, 422, 500, 503)}}},
            "/api/models/{name}/batches/{batch_id}/labels": {"post": {
                "summary": "Labels for a batch pushed without its target: completes its evaluation (concept "
                           "drift, realized performance, the estimate's error) and MLflow run",
                "security": write,
                "parameters": [name, {"name": "batch_id", "in": "path", "required": True,
                                      "schema": {"type": "string"}},
                               {"name": "id_column", "in": "query", "schema": {"type": "string"},
                                "description": "join on this column (the batch was pushed with the "
                                               "same ?id_column=); without it, one label per pushed "
                                               "row in order"}],
                "requestBody": batch_body,
                "responses": {"200": _json(EVALUATION, "completed, or the same labels again"),
                              **_errors(400, 401, 404, 409, 413, 415, 422, 503)}}},
            "/api/models/{name}/estimate": {"get": {
                "summary": "Track record of the label-free estimate: mean absolute relative error, interval "
                           "coverage, unreliable flag",
                "parameters": [name],
                "responses": {"200": _json({"type": "object"}, "track record")}}},
            "/api/models/{name}/versions/{version}/reference": {"put": {
                "summary": "Upload a reference (inputs + target) for one version; replaces the window",
                "security": write,
                "parameters": [name, {"name": "version", "in": "path", "required": True,
                                      "schema": {"type": "string"}}],
                "requestBody": batch_body,
                "responses": {"201": _json({"type": "object"}, "stored"),
                              **_errors(400, 401, 404, 415, 422, 503)}}},
            "/api/models/{name}/evaluate": {"post": {
                "summary": "Evaluate now on a simulated batch", "security": write, "parameters": [name],
                "requestBody": {"required": False, "content": {"application/json": {"schema": {
                    "type": "object", "properties": {
                        "scenario": {"type": "string", "enum": ["clean", "data_drift", "concept_drift"]},
                        "rows": {"type": "integer"}, "seed": {"type": "integer"},
                        "version": {"type": "string"}}}}}},
                "responses": {"201": _json(EVALUATION, "evaluated"), **_errors(400, 401, 404, 422, 503)}}},
            "/api/dependencies": {"get": {
                "summary": "What the dependency watch last saw (tracking, database, S3 inbox, receivers)",
                "responses": {"200": _json({"type": "object"}, "per dependency: up, down_since, problem")}}},
            "/api/missed-slots": {"get": {
                "summary": "Scheduled slots not evaluated (outage, backoff) and what caught them up",
                "parameters": [{"name": "model", "in": "query", "schema": {"type": "string"}},
                               {"name": "open", "in": "query", "schema": {"type": "boolean"}},
                               {"name": "limit", "in": "query", "schema": {"type": "integer"}}],
                "responses": {"200": _json({"type": "object"}, "missed slots, newest first"),
                              **_errors(400)}}},
            "/api/alert-episodes": {"get": {
                "summary": "Every firing → resolved episode of every alert, newest first",
                "parameters": [{"name": p, "in": "query", "schema": {"type": "string"}}
                               for p in ("model", "alertname", "open", "limit")],
                "responses": {"200": _json({"type": "object"}, "episodes")}}},
            "/api/openapi.json": {"get": {"summary": "This document",
                                          "responses": {"200": {"description": "OpenAPI 3 document"}}}},
            **_loop_paths(name, write),
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
                                           "description": "MONITOR_API_TOKEN (writes; MONITOR_READ_TOKEN "
                                                          "also works for reads)"},
                                "team": {"type": "http", "scheme": "basic",
                                         "description": "production reads: the MLflow team login"}},
            "schemas": {
                "Error": {"type": "object", "required": ["error"],
                          "properties": {"error": {"type": "string"}, "detail": {}}},
                "Evaluation": {"type": "object", "properties": {
                    "id": {"type": "integer"}, "model_name": {"type": "string"},
                    "model_version": {"type": "string"}, "batch_id": {"type": "string"},
                    "source": {"type": "string"}, "scenario": {"type": "string", "nullable": True},
                    "status": {"type": "string",
                               "enum": ["ok", "failed", "rejected", "collecting", "no_reference"]},
                    "task": {"type": "string", "enum": ["regression", "classification"], "nullable": True},
                    "accuracy": {"type": "number", "nullable": True},
                    "performance": {"type": "object"},
                    "reference": {"type": "object", "properties": {
                        "kind": {"type": "string", "nullable": True},
                        "source": {"type": "string", "nullable": True}}},
                    "error": {"type": "string", "nullable": True},
                    "data_drift": {"type": "boolean", "nullable": True},
                    "concept_drift": {"type": "boolean", "nullable": True},
                    "prediction_drift": {"type": "boolean", "nullable": True},
                    "drifted_features": {"type": "array", "items": {"type": "string"}},
                    "mse": {"type": "number", "nullable": True}, "mae": {"type": "number", "nullable": True},
                    "mlflow_run_id": {"type": "string", "nullable": True},
                    "labels": {"type": "string", "enum": ["at_push", "pending", "received"],
                               "nullable": True},
                    "n_labelled": {"type": "integer", "nullable": True},
                    "labels_received_at": {"type": "string", "nullable": True},
                    "estimate": {"type": "object", "nullable": True,
                                 "description": "label-free estimate: metrics.{mse,mae|accuracy,macro_f1}."
                                                "{estimate,lower,upper}, confidence, judged (after labels)"},
                    "report": {"type": "object"},
                    "feature_results": {"type": "array", "items": {"type": "object"}}}},
            },
        },
    }


def _loop_paths(name: dict[str, Any], write: list[dict[str, Any]]) -> dict[str, Any]:
    """The closed loop (docs/promotion.md): challengers, decisions, retraining requests."""
    request_id = {"name": "request_id", "in": "path", "required": True, "schema": {"type": "integer"}}
    obj = {"type": "object"}
    return {
        "/api/models/{name}/challengers": {"get": {
            "summary": "Challenger tests (state and evidence), paired batch scores, decisions, retraining",
            "parameters": [name], "responses": {"200": _json(obj, "the model's closed loop")}}},
        "/api/retraining": {"get": {"summary": "Recent retraining requests",
                                    "responses": {"200": _json(obj, "requests, newest first")}}},
        "/api/retraining/{request_id}/data": {"get": {
            "summary": "The labelled rows a retraining request trains on (Parquet), for an orchestrator",
            "security": write, "parameters": [request_id],
            "responses": {"200": {"description": "Parquet", "content": {
                "application/vnd.apache.parquet": {"schema": {"type": "string", "format": "binary"}}}},
                **_errors(401, 404), "410": _json(ERROR, "the batches are no longer kept")}}},
        "/api/retraining/{request_id}": {"post": {
            "summary": "An orchestrator reports a retraining's end: {status: succeeded, version} or "
                       "{status: failed, error}",
            "security": write, "parameters": [request_id],
            "requestBody": {"required": True, "content": {"application/json": {"schema": obj,
                            "example": {"status": "succeeded", "version": "7"}}}},
            "responses": {"200": _json(obj, "the request, closed"), **_errors(400, 401, 404, 409)}}},
    }
