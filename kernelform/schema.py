"""The manifest's JSON Schema, generated from the declarations the checker validates with.

Editors (through yaml-language-server) complete and check a manifest as it is
typed, and CI can check one without kernelform; both need a JSON Schema. It is
generated, never written by hand: the sections come from ``SECTIONS``, the
top level's own settings (``state``) from ``TopKeys``, and each entry's keys
from its pydantic model in ``kernelform.manifest.keys`` (type,
default, description and schema of each key are declared there once), and
names carry the checker's own ``NAME_PATTERN``. A key added there is in the
schema with no other edit, and ``schema/kernelform.schema.json`` is a copy a
test keeps equal to this.

The schema sees the file before ``${VAR}`` expansion, so a string holding
``${`` is accepted wherever a value is. What it cannot say, the checker still
does: a kernel's server must be declared, variables must be defined, a
``ca_bundle`` must hold certificates, YAML-level refusals (aliases, duplicate
keys, tabs, size), and what a variable expands to.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from pydantic.json_schema import GenerateJsonSchema

from kernelform.address import NAME_PATTERN
from kernelform.duration import format_duration
from kernelform.manifest.keys import SECTIONS, TopKeys
from kernelform.masking import Secret

DIALECT = "https://json-schema.org/draft/2020-12/schema"


class _Generator(GenerateJsonSchema):
    """pydantic's generator, without the titles it derives from field names
    ("Ca Bundle"): editors show a key's description, which says more."""

    def field_title_should_be_set(self, schema: Any) -> bool:
        return False

    def encode_default(self, dft: Any) -> Any:
        """A default as a manifest writes it: ``5m``, not ``PT5M``."""
        if isinstance(dft, timedelta):
            return format_duration(dft)
        if isinstance(dft, Secret):  # a default declared in code (no token), never a user's
            return dft.reveal()
        return super().encode_default(dft)


def manifest_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a kernelform manifest."""
    definitions: dict[str, Any] = {}
    properties: dict[str, Any] = {}
    for name, section in SECTIONS.items():
        model = section.model
        entry = model.model_json_schema(schema_generator=_Generator, ref_template="#/$defs/{model}")
        definitions.update(entry.pop("$defs", {}))
        entry["title"] = f"{name}.NAME"
        definitions[model.__name__] = entry
        mapping: dict[str, Any] = {
            "type": ["object", "null"] if section.may_be_empty else "object",
            "description": section.description,
            "propertyNames": {"pattern": f"^(?:{NAME_PATTERN})$"},
            "additionalProperties": {"$ref": f"#/$defs/{model.__name__}"},
        }
        if not section.may_be_empty:
            mapping["minProperties"] = 1
        properties[name] = mapping
    # The top level's own settings (state:), declared like any key.
    top = TopKeys.model_json_schema(schema_generator=_Generator, ref_template="#/$defs/{model}")
    definitions.update(top.pop("$defs", {}))
    properties.update(top["properties"])
    return {
        "$schema": DIALECT,
        "title": "kernelform manifest",
        "description": "Which Jupyter kernels must run on which Jupyter servers "
        "(kernelform.yaml). Values may hold ${VAR} and ${VAR:-default}.",
        "type": "object",
        "properties": properties,
        "required": [name for name, section in SECTIONS.items() if section.required],
        "anyOf": [{"required": [name]} for name, s in SECTIONS.items() if s.hosts_kernels],
        "additionalProperties": False,
        "$defs": definitions,
    }
