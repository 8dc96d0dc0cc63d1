"""The OpenAPI schema says how each operation refuses, as the API answers.

DRF answers a refused field with ``{"field": ["problem", ...]}`` (400) and a refused request with
``{"detail": "..."}`` (401, 403, 404, 415); a 404 may instead name the field whose value names
nothing. Views document only their own answers: this hook adds the others to every operation, so
clients (and the contract tests, tests/api) can rely on the shape of every answer.
"""

from __future__ import annotations

SCHEMAS = {
    "FieldProblems": {
        "type": "object",
        "description": 'Each refused field with its problems, e.g. {"name": ["This field is required."]}.',
        "additionalProperties": {},
    },
    "RequestRefused": {
        "type": "object",
        "properties": {"detail": {"type": "string"}},
        "required": ["detail"],
    },
}
# status: (the answers' schemas, description, which operations)
ANSWERS = {
    "400": (("FieldProblems",), "A field is missing or invalid: each field with its problems.", "input"),
    "401": (("RequestRefused",), "No valid API token or session.", "all"),
    "403": (("RequestRefused",), "Your role does not allow this.", "all"),
    "404": (
        ("RequestRefused", "FieldProblems"),
        "Nothing with this id or key (in the path, the query or the body).",
        "all",
    ),
    "415": (("RequestRefused",), "The body is not JSON (or another media type the operation takes).", "body"),
}


def _schema(components: tuple[str, ...]) -> dict:
    references = [{"$ref": f"#/components/schemas/{component}"} for component in components]
    return references[0] if len(references) == 1 else {"anyOf": references}


def error_responses(result: dict, generator, request, public) -> dict:
    """drf-spectacular post-processing hook (SPECTACULAR_SETTINGS["POSTPROCESSING_HOOKS"])."""
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    for name, schema in SCHEMAS.items():
        schemas.setdefault(name, schema)
    for operations in result.get("paths", {}).values():
        for operation in operations.values():
            parameters = operation.get("parameters", [])
            takes = {
                "all",
                *(("body", "input") if "requestBody" in operation else ()),
                *(("input",) if any(parameter["in"] == "query" for parameter in parameters) else ()),
            }
            responses = operation.setdefault("responses", {})
            for code, (components, description, which) in ANSWERS.items():
                if which not in takes:
                    continue
                documented = responses.get(code)
                if documented is None:
                    responses[code] = {
                        "content": {"application/json": {"schema": _schema(components)}},
                        "description": description,
                    }
                else:
                    # The view's own answer (a rule's problems, a graph's) or DRF's.
                    for media in documented.get("content", {}).values():
                        media["schema"] = {"anyOf": [media["schema"], _schema(components)]}
    return result
