"""Schemathesis hooks for opslog: newline-delimited JSON (`application/x-ndjson`), the media type
of `GET /export` and `POST /import`.

The document gives one `ExportLine` as the schema of an NDJSON body: it describes each line.
"""

import json

import schemathesis

NDJSON = "application/x-ndjson"


@schemathesis.serializer(NDJSON)
def to_ndjson(ctx, value):
    """A generated value as a one-line NDJSON body; bytes go as they are."""
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    return (json.dumps(value) + "\n").encode("utf-8")


@schemathesis.deserializer(NDJSON)
def from_ndjson(ctx, response):
    """Checks every line of an NDJSON answer against the documented line schema, then gives the
    first line to schemathesis' own checks (which validate one value)."""
    lines = [json.loads(line) for line in response.content.decode("utf-8").splitlines() if line.strip()]
    if not lines:
        raise ValueError("an NDJSON answer without a single line")
    definition = ctx.operation.responses.find_by_status_code(response.status_code)
    if definition is not None:
        resolved = definition.get_schema(NDJSON)
        if resolved.schema is not None:
            validator = definition.get_validator(resolved.media_type, resolved.schema)
            for number, line in enumerate(lines, 1):
                errors = [error.message for error in validator.iter_errors(line)]
                if errors:
                    raise ValueError(f"line {number} does not match the document: {errors}: {line!r}")
    return lines[0]
