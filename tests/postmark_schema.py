"""Postmark's own request definitions (tests/postmark/server.yml, a copy of the published
Swagger file) with the fixes the file lacks, as jsonschema validators."""

from __future__ import annotations

import copy
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml

SWAGGER = Path(__file__).parent / "postmark" / "server.yml"

_METADATA = {
    "type": "object",
    "maxProperties": 10,
    "propertyNames": {"maxLength": 20},
    "additionalProperties": {"type": "string", "maxLength": 80},
}


@cache
def definitions() -> dict[str, Any]:
    """The Swagger definitions with the overlay: MessageStream and Metadata on both send
    shapes, template sends requiring one of TemplateId/TemplateAlias (the file wrongly
    requires both), no unknown properties, and the body rule of plain sends."""
    defs: dict[str, Any] = copy.deepcopy(yaml.safe_load(SWAGGER.read_text())["definitions"])
    for name in ("SendEmailRequest", "EmailWithTemplateRequest"):
        schema = defs[name]
        schema["type"] = "object"
        schema["properties"]["MessageStream"] = {"type": "string", "minLength": 1}
        schema["properties"]["Metadata"] = _METADATA
        schema["additionalProperties"] = False
    plain = defs["SendEmailRequest"]
    plain["required"] = ["From", "To"]
    plain["anyOf"] = [{"required": ["TextBody"]}, {"required": ["HtmlBody"]}]
    templated = defs["EmailWithTemplateRequest"]
    templated["required"] = ["From", "To", "TemplateModel"]
    templated["oneOf"] = [{"required": ["TemplateId"]}, {"required": ["TemplateAlias"]}]
    defs["SendEmailTemplatedBatchRequest"]["required"] = ["Messages"]
    defs["SendEmailTemplatedBatchRequest"]["additionalProperties"] = False
    return defs


def validate(definition: str, instance: Any) -> None:
    """Raise ``jsonschema.ValidationError`` unless ``instance`` matches ``definition``."""
    schema = {"$ref": f"#/definitions/{definition}", "definitions": definitions()}
    jsonschema.Draft4Validator(schema, format_checker=jsonschema.FormatChecker()).validate(
        instance
    )


#: Which definition each endpoint's request body must match.
ENDPOINT_DEFINITIONS = {
    "/email": "SendEmailRequest",
    "/email/withTemplate": "EmailWithTemplateRequest",
    "/email/batch": "SendEmailBatchRequest",
    "/email/batchWithTemplates": "SendEmailTemplatedBatchRequest",
}
