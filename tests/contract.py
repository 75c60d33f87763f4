"""The city contract, docs/asyncapi.json, as checks that tests run on what the gateway publishes.

    topic_matches_contract(topic)        -> bool: exactly one channel has this topic as its address
    matching_channels(topic)             -> the names of the channels whose address it is
    operations(channel_name)             -> the operations on a channel
    payload_errors(topic, payload)       -> [] when a decoded payload fits one of the channel's
                                            messages, else what is wrong

Channel addresses become regular expressions: each {parameter} is replaced by the parameter's
`x-pattern` (AsyncAPI 3.0 parameters have no schema). Schemas are checked with the subset of JSON
Schema the document uses; a keyword outside it is an error, never silently ignored.
"""

import json
import re
from functools import cache
from pathlib import Path

from luciole.protocols.topics import DEFAULT_PREFIX

DOCUMENT = Path(__file__).resolve().parent.parent / "docs" / "asyncapi.json"
_PARAMETER = re.compile(r"\{([^{}]+)\}")


@cache
def contract() -> dict:
    return json.loads(DOCUMENT.read_text())


def resolve(node):
    """Follows local references ("#/components/...") to the node they name."""
    while isinstance(node, dict) and "$ref" in node:
        target = contract()
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part.replace("~1", "/").replace("~0", "~")]
        node = target
    return node


def address_regex(channel: dict, prefix=DEFAULT_PREFIX) -> re.Pattern:
    address = channel["address"]
    if prefix != DEFAULT_PREFIX and address.startswith(DEFAULT_PREFIX + "/"):
        address = prefix + address.removeprefix(DEFAULT_PREFIX)
    pieces, last = [], 0
    for m in _PARAMETER.finditer(address):
        pattern = resolve(channel["parameters"][m.group(1)])["x-pattern"]
        pieces += [re.escape(address[last : m.start()]), f"(?:{pattern.strip('^$')})"]
        last = m.end()
    pieces.append(re.escape(address[last:]))
    return re.compile("".join(pieces))


@cache
def _addresses(prefix) -> tuple[tuple[str, re.Pattern], ...]:
    channels = contract()["channels"].items()
    return tuple(
        (name, address_regex(channel, prefix))
        for name, channel in channels
        if channel.get("address") is not None  # a reply channel: the requester picks its topic
    )


def matching_channels(topic: str, prefix=DEFAULT_PREFIX) -> list[str]:
    return [name for name, regex in _addresses(prefix) if regex.fullmatch(topic)]


def operations(channel_name: str) -> list[dict]:
    ref = f"#/channels/{channel_name}"
    return [op for op in contract()["operations"].values() if op["channel"]["$ref"] == ref]


def topic_matches_contract(topic: str, prefix=DEFAULT_PREFIX, action=None) -> bool:
    """Whether exactly one channel of the contract has this address; with `action` ("send" or
    "receive", the gateway's point of view), one that an operation with that action uses."""
    names = matching_channels(topic, prefix)
    if action is not None:
        names = [n for n in names if any(op["action"] == action for op in operations(n))]
    return len(names) == 1


def payload_errors(topic: str, payload, prefix=DEFAULT_PREFIX) -> list[str]:
    """[] when `payload` (decoded: JSON, or a SenML pack with its JSON labels) fits a message of
    the topic's channel; otherwise the problems found against the first one."""
    names = matching_channels(topic, prefix)
    if len(names) != 1:
        return [f"{topic}: {len(names)} channels of the contract match"]
    messages = [resolve(m) for m in contract()["channels"][names[0]]["messages"].values()]
    found = [validate(payload, m["payload"]) for m in messages]
    return [] if [] in found else found[0]


# -- a small JSON Schema (draft 7) checker: the keywords docs/asyncapi.json uses ---------------

_ANNOTATIONS = {"description", "examples", "default", "format", "title"}
_KEYWORDS = _ANNOTATIONS | {
    "$ref",
    "allOf",
    "oneOf",
    "type",
    "const",
    "enum",
    "pattern",
    "minimum",
    "maximum",
    "required",
    "properties",
    "additionalProperties",
    "items",
    "additionalItems",
    "minItems",
    "maxItems",
    "uniqueItems",
}
_TYPES = {
    "null": lambda v: v is None,
    "boolean": lambda v: isinstance(v, bool),
    "integer": lambda v: _number(v) and float(v).is_integer(),
    "number": lambda v: _number(v),
    "string": lambda v: isinstance(v, str),
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
}


def _number(value):
    return isinstance(value, int | float) and not isinstance(value, bool)


def _same(a, b):
    return a == b and isinstance(a, bool) == isinstance(b, bool)


def validate(value, schema, path="$") -> list[str]:
    schema = resolve(schema)
    unknown = set(schema) - _KEYWORDS
    if unknown:
        raise ValueError(f"{path}: schema keywords this checker does not know: {sorted(unknown)}")
    errors = []
    for sub in schema.get("allOf", ()):
        errors += validate(value, sub, path)
    if "oneOf" in schema:
        fits = sum(not validate(value, sub, path) for sub in schema["oneOf"])
        if fits != 1:
            errors.append(f"{path}: fits {fits} of oneOf, not 1")
    types = schema.get("type")
    if types is not None:
        types = [types] if isinstance(types, str) else types
        if not any(_TYPES[t](value) for t in types):
            return [*errors, f"{path}: {value!r} is not {' or '.join(types)}"]
    if "const" in schema and not _same(value, schema["const"]):
        errors.append(f"{path}: {value!r} is not {schema['const']!r}")
    if "enum" in schema and not any(_same(value, e) for e in schema["enum"]):
        errors.append(f"{path}: {value!r} is not one of {schema['enum']}")
    if isinstance(value, str) and "pattern" in schema and not re.search(schema["pattern"], value):
        errors.append(f"{path}: {value!r} does not match {schema['pattern']}")
    if _number(value) and not schema.get("minimum", value) <= value <= schema.get("maximum", value):
        errors.append(f"{path}: {value!r} is out of range")
    if isinstance(value, dict):
        errors += _validate_object(value, schema, path)
    if isinstance(value, list):
        errors += _validate_array(value, schema, path)
    return errors


def _validate_object(value, schema, path):
    errors = [
        f"{path}: {key!r} is missing" for key in schema.get("required", ()) if key not in value
    ]
    properties = schema.get("properties", {})
    extra = schema.get("additionalProperties", True)
    for key, item in value.items():
        if key in properties:
            errors += validate(item, properties[key], f"{path}.{key}")
        elif extra is False:
            errors.append(f"{path}: {key!r} is not allowed")
        elif extra is not True:
            errors += validate(item, extra, f"{path}.{key}")
    return errors


def _validate_array(value, schema, path):
    errors = []
    if not schema.get("minItems", 0) <= len(value) <= schema.get("maxItems", len(value)):
        errors.append(f"{path}: {len(value)} items is out of range")
    if schema.get("uniqueItems") and len({json.dumps(v, sort_keys=True) for v in value}) < len(
        value
    ):
        errors.append(f"{path}: items are not unique")
    items = schema.get("items", {})
    prefix = items if isinstance(items, list) else []
    rest = schema.get("additionalItems", {}) if prefix else items
    for i, item in enumerate(value):
        errors += validate(item, prefix[i] if i < len(prefix) else rest, f"{path}[{i}]")
    return errors
