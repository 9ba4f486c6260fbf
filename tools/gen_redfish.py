#!/usr/bin/env python3
"""Generate bmcd/generated/* from the DMTF Redfish schema bundle.

Reads message registries, the privilege registry and JSON schemas from a local
copy of the DMTF Redfish publications (default: ../shared/redfish relative to the
repository root) and writes plain Python modules holding the facts bmcd needs.

Usage: python tools/gen_redfish.py [--shared PATH] [--out DIR]

To serve a new resource type, add it to SERVED_TYPES and rerun.  The output is
deterministic: rerunning on the same input reproduces the files byte for byte.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SHARED = REPO_ROOT.parent / "shared" / "redfish"
DEFAULT_OUT = REPO_ROOT / "bmcd" / "generated"

# Resource types bmcd serves.  Add to this list and rerun the generator.
SERVED_TYPES: tuple[str, ...] = (
    "AccountService",
    "ActionInfo",
    "Certificate",
    "CertificateCollection",
    "CertificateLocations",
    "CertificateService",
    "EthernetInterface",
    "EthernetInterfaceCollection",
    "EventDestination",
    "EventDestinationCollection",
    "EventService",
    "LogEntry",
    "LogEntryCollection",
    "LogService",
    "LogServiceCollection",
    "Manager",
    "ManagerAccount",
    "ManagerAccountCollection",
    "ManagerCollection",
    "ManagerNetworkProtocol",
    "MessageRegistry",
    "MessageRegistryFile",
    "MessageRegistryFileCollection",
    "Role",
    "RoleCollection",
    "SecurityPolicy",
    "ServiceRoot",
    "Session",
    "SessionCollection",
    "SessionService",
    "SoftwareInventory",
    "SoftwareInventoryCollection",
    "Task",
    "TaskCollection",
    "TaskService",
    "UpdateService",
)

# Message registries bmcd uses (newest registries/<Prefix>.<version>.json each).
SERVED_REGISTRIES: tuple[str, ...] = ("Base", "ResourceEvent", "TaskEvent", "Update")

# Nesting limit for inline object properties in SPECS.
MAX_DEPTH = 6

LICENSE_NOTE = "(DMTF, BSD-3-Clause). Do not edit."
TYPE_ORDER = ("string", "integer", "number", "boolean", "object", "array", "null")
ANNOTATION_PATTERN = (
    "^([a-zA-Z_][a-zA-Z0-9_]*)?@(odata|Redfish|Message)\\.[a-zA-Z_][a-zA-Z0-9_]*$"
)
ODATA_ID_REF = "odata-v4.json#/definitions/idRef"
VERSIONED_RE = re.compile(r"^(?P<name>[A-Za-z0-9]+)\.v(?P<ver>\d+_\d+_\d+)\.json$")
WIDTH = 88

Json = Any


# --------------------------------------------------------------------------
# Python source emitter
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Call:
    """A constructor call to render, e.g. Prop(("string",), readonly=True)."""

    name: str
    args: tuple[Any, ...] = ()
    kwargs: tuple[tuple[str, Any], ...] = ()


def str_literal(value: str) -> str:
    """Return an ASCII-only, double-quoted Python literal for value."""
    text = ascii(value)
    if text.startswith("'") and '"' not in value:
        return '"' + text[1:-1] + '"'
    return text


def flat(value: Any) -> str:
    """Render value on one line."""
    if isinstance(value, Call):
        parts = [flat(a) for a in value.args]
        parts += [f"{k}={flat(v)}" for k, v in value.kwargs]
        return f"{value.name}({', '.join(parts)})"
    if isinstance(value, dict):
        inner = ", ".join(f"{flat(k)}: {flat(v)}" for k, v in value.items())
        return "{" + inner + "}"
    if isinstance(value, tuple):
        if len(value) == 1:
            return f"({flat(value[0])},)"
        return "(" + ", ".join(flat(v) for v in value) + ")"
    if isinstance(value, str):
        return str_literal(value)
    if value is None or isinstance(value, bool | int):
        return repr(value)
    if isinstance(value, float):
        return repr(value)
    raise TypeError(f"cannot render {type(value).__name__}")


def render(value: Any, indent: int = 0, prefix: str = "", suffix: str = "") -> str:
    """Render value, breaking it over lines when it does not fit WIDTH."""
    pad = " " * indent
    one = flat(value)
    if len(pad) + len(prefix) + len(one) + len(suffix) <= WIDTH:
        return f"{pad}{prefix}{one}{suffix}"
    inner = indent + 4
    lines: list[str]
    if isinstance(value, Call):
        lines = [f"{pad}{prefix}{value.name}("]
        lines += [render(a, inner, "", ",") for a in value.args]
        lines += [render(v, inner, f"{k}=", ",") for k, v in value.kwargs]
        lines.append(f"{pad}){suffix}")
    elif isinstance(value, dict) and value:
        lines = [f"{pad}{prefix}{{"]
        lines += [render(v, inner, f"{flat(k)}: ", ",") for k, v in value.items()]
        lines.append(f"{pad}}}{suffix}")
    elif isinstance(value, tuple) and value:
        lines = [f"{pad}{prefix}("]
        lines += [render(v, inner, "", ",") for v in value]
        lines.append(f"{pad}){suffix}")
    else:
        # Scalars (long strings) stay on one line; E501 is ignored for output.
        return f"{pad}{prefix}{one}{suffix}"
    return "\n".join(lines)


def header(sources: Sequence[str], summary: str) -> list[str]:
    """First lines of a generated module: provenance comment."""
    if len(sources) <= 4:
        first = ", ".join(sources)
        return [f"# Generated by tools/gen_redfish.py from {first} {LICENSE_NOTE}"]
    lines = [f"# Generated by tools/gen_redfish.py from {summary} {LICENSE_NOTE}"]
    lines.append("# Source files:")
    row = "#"
    for src in sources:
        if len(row) + 1 + len(src) > WIDTH:
            lines.append(row)
            row = "#"
        row += " " + src
    lines.append(row)
    return lines


def write_module(path: Path, lines: Iterable[str]) -> None:
    text = "\n".join(lines).rstrip("\n") + "\n"
    path.write_text(text, encoding="utf-8", newline="\n")


def version_key(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.split(r"[._]", text) if p.isdigit())


def load_json(path: Path) -> Json:
    with path.open(encoding="utf-8") as handle:
        return json.load(handle)


# --------------------------------------------------------------------------
# Message registries
# --------------------------------------------------------------------------


def newest_registry(registries: Path, prefix: str) -> Path:
    pattern = re.compile(rf"^{re.escape(prefix)}\.(\d+\.\d+\.\d+)\.json$")
    found = [
        (version_key(m.group(1)), p)
        for p in registries.iterdir()
        if (m := pattern.match(p.name))
    ]
    if not found:
        raise SystemExit(f"no registry file for {prefix} in {registries}")
    return max(found)[1]


def gen_registries(shared: Path, out: Path) -> None:
    registries = shared / "registries"
    files = [newest_registry(registries, p) for p in SERVED_REGISTRIES]
    data: dict[str, Json] = {}
    for path in files:
        doc = load_json(path)
        data[doc["RegistryPrefix"]] = doc

    lines = header([f"registries/{p.name}" for p in files], "registries/*.json")
    lines += [
        '"""Redfish message registries: message specs and message-key constants."""',
        "",
        "from __future__ import annotations",
        "",
        "from typing import NamedTuple",
        "",
        "",
        "class MessageSpec(NamedTuple):",
        '    """One registry message; message is a template with %1, %2, ..."""',
        "",
        "    message: str",
        "    severity: str",
        "    number_of_args: int",
        "    param_types: tuple[str, ...]",
        "    resolution: str",
        "    description: str",
        "",
        "",
        "class RegistryData(NamedTuple):",
        '    """A message registry: header facts and its messages by key."""',
        "",
        "    prefix: str",
        "    version: str",
        "    name: str",
        "    language: str",
        "    owning_entity: str",
        "    description: str",
        "    messages: dict[str, MessageSpec]",
    ]
    for prefix in sorted(data):
        doc = data[prefix]
        lines += ["", "", f"class {prefix}:"]
        lines.append(f'    """Message keys of the {prefix} registry."""')
        lines.append("")
        for key in sorted(doc["Messages"]):
            lines.append(f"    {key} = {str_literal(key)}")

    registry_values: dict[str, Any] = {}
    for prefix in sorted(data):
        doc = data[prefix]
        messages: dict[str, Call] = {}
        for key in sorted(doc["Messages"]):
            msg = doc["Messages"][key]
            messages[key] = Call(
                "MessageSpec",
                kwargs=(
                    ("message", msg["Message"]),
                    ("severity", msg.get("MessageSeverity", msg.get("Severity", ""))),
                    ("number_of_args", int(msg.get("NumberOfArgs", 0))),
                    ("param_types", tuple(msg.get("ParamTypes", ()))),
                    ("resolution", msg.get("Resolution", "")),
                    ("description", msg.get("Description", "")),
                ),
            )
        registry_values[prefix] = Call(
            "RegistryData",
            kwargs=(
                ("prefix", prefix),
                ("version", doc["RegistryVersion"]),
                ("name", doc.get("Name", "")),
                ("language", doc.get("Language", "")),
                ("owning_entity", doc.get("OwningEntity", "")),
                ("description", doc.get("Description", "")),
                ("messages", messages),
            ),
        )
    lines += ["", ""]
    lines.append(render(registry_values, 0, "REGISTRIES: dict[str, RegistryData] = "))
    write_module(out / "registries.py", lines)


# --------------------------------------------------------------------------
# Privilege registry
# --------------------------------------------------------------------------

OVERRIDE_KINDS = (
    ("PropertyOverrides", "PROPERTY_OVERRIDES"),
    ("SubordinateOverrides", "SUBORDINATE_OVERRIDES"),
    ("ResourceURIOverrides", "RESOURCE_URI_OVERRIDES"),
)


def newest_privilege_registry(registries: Path) -> Path:
    pattern = re.compile(r"^Redfish_(\d+\.\d+\.\d+)_PrivilegeRegistry\.json$")
    found = [
        (version_key(m.group(1)), p)
        for p in registries.iterdir()
        if (m := pattern.match(p.name))
    ]
    if not found:
        raise SystemExit(f"no privilege registry in {registries}")
    return max(found)[1]


def operation_map(raw: dict[str, Json]) -> dict[str, tuple[tuple[str, ...], ...]]:
    """HTTP method -> alternatives (any one suffices) of privilege sets (all)."""
    return {
        method: tuple(tuple(alt["Privilege"]) for alt in raw[method])
        for method in sorted(raw)
    }


def gen_privilege_map(shared: Path, out: Path, notes: list[str]) -> None:
    path = newest_privilege_registry(shared / "registries")
    doc = load_json(path)
    mappings = {m["Entity"]: m for m in doc["Mappings"]}
    served = set(SERVED_TYPES)
    entities = sorted(served & set(mappings))
    for name in sorted(served - set(mappings)):
        notes.append(f"privilege registry has no entity {name}")
    reg_id: str = doc["Id"]
    match = re.search(r"(\d+\.\d+\.\d+)", reg_id)
    version = match.group(1) if match else reg_id

    op_maps = {e: operation_map(mappings[e]["OperationMap"]) for e in entities}
    overrides: dict[str, dict[str, Any]] = {var: {} for _, var in OVERRIDE_KINDS}
    for entity in entities:
        for key, var in OVERRIDE_KINDS:
            items = mappings[entity].get(key)
            if not items:
                continue
            # Source order kept: targets are ordered (subordinate chains).
            overrides[var][entity] = tuple(
                (tuple(item["Targets"]), operation_map(item["OperationMap"]))
                for item in items
            )

    alts = "tuple[tuple[str, ...], ...]"
    lines = header([f"registries/{path.name}"], "")
    lines += [
        '"""Redfish privilege map: required privileges per entity and method.',
        "",
        "Each method maps to alternatives (any one suffices); each alternative is a",
        "set of privileges that are all required.  Overrides are tuples of",
        "(targets, operation map) in registry order: property names for",
        "PROPERTY_OVERRIDES, the chain of entities the resource is subordinate to",
        "for SUBORDINATE_OVERRIDES, URIs for RESOURCE_URI_OVERRIDES.",
        '"""',
        "",
        f"REGISTRY_ID = {str_literal(reg_id)}",
        f"REGISTRY_VERSION = {str_literal(version)}",
        "",
        render(tuple(doc["PrivilegesUsed"]), 0, "PRIVILEGES_USED: tuple[str, ...] = "),
        render(
            tuple(doc.get("OEMPrivilegesUsed", ())),
            0,
            "OEM_PRIVILEGES_USED: tuple[str, ...] = ",
        ),
        "",
        render(op_maps, 0, f"OPERATION_MAP: dict[str, dict[str, {alts}]] = "),
    ]
    ov_type = f"dict[str, tuple[tuple[tuple[str, ...], dict[str, {alts}]], ...]]"
    for _, var in OVERRIDE_KINDS:
        lines.append("")
        lines.append(render(overrides[var], 0, f"{var}: {ov_type} = "))
    write_module(out / "privilege_map.py", lines)


# --------------------------------------------------------------------------
# JSON schemas
# --------------------------------------------------------------------------


@dataclass
class PropSpec:
    types: tuple[str, ...]
    readonly: bool = False
    enum: tuple[str, ...] | None = None
    minimum: float | None = None
    maximum: float | None = None
    pattern: str | None = None
    props: dict[str, PropSpec] | None = None
    items: PropSpec | None = None
    required_on_create: bool = False
    link: bool = False
    deprecated: bool = False

    def to_call(self) -> Call:
        kwargs: list[tuple[str, Any]] = []
        defaults = PropSpec(types=())
        for name in (
            "readonly",
            "enum",
            "minimum",
            "maximum",
            "pattern",
            "props",
            "items",
            "required_on_create",
            "link",
            "deprecated",
        ):
            value = getattr(self, name)
            if value == getattr(defaults, name):
                continue
            if name == "props":
                value = {k: v.to_call() for k, v in value.items()}
            elif name == "items":
                value = value.to_call()
            kwargs.append((name, value))
        return Call("Prop", (self.types,), tuple(kwargs))


@dataclass
class Resolved:
    """A schema after following $ref/anyOf, with site keywords merged in."""

    schema: dict[str, Json]
    file: str
    key: str
    nullable: bool = False
    link: bool = False
    merged: dict[str, Json] = field(default_factory=dict)


class SchemaSet:
    """Loads json-schema files on demand and resolves references."""

    MERGE_KEYS = ("readonly", "deprecated", "minimum", "maximum", "pattern")

    def __init__(self, folder: Path, notes: list[str]) -> None:
        self.folder = folder
        self.notes = notes
        self.cache: dict[str, Json] = {}
        self.used: set[str] = set()
        self.newest: dict[str, str] = {}
        for path in folder.iterdir():
            m = VERSIONED_RE.match(path.name)
            if not m:
                continue
            name, ver = m.group("name"), m.group("ver")
            old = self.newest.get(name)
            if old is None or version_key(ver) > version_key(old):
                self.newest[name] = ver

    def note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)

    def load(self, filename: str) -> Json | None:
        if filename in self.cache:
            return self.cache[filename]
        path = self.folder / filename
        doc = load_json(path) if path.is_file() else None
        self.cache[filename] = doc
        if doc is not None:
            self.used.add(filename)
        return doc

    def newest_file(self, filename: str) -> str:
        """Map X.vA_B_C.json or X.json to the newest versioned X file present."""
        m = VERSIONED_RE.match(filename)
        name = m.group("name") if m else filename.removesuffix(".json")
        ver = self.newest.get(name)
        return f"{name}.v{ver}.json" if ver else filename

    def lookup(self, ref: str, current: str) -> tuple[str, str, Json | None]:
        """Return (file, definition name, schema) for a $ref."""
        base, _, pointer = ref.partition("#")
        filename = base.rsplit("/", 1)[-1] if base else current
        if not pointer.startswith("/definitions/"):
            self.note(f"unsupported $ref {ref} in {current}")
            return filename, pointer, None
        key = pointer.removeprefix("/definitions/")
        doc = self.load(filename)
        if doc is None and VERSIONED_RE.match(filename):
            newer = self.newest_file(filename)
            if newer != filename:
                doc = self.load(newer)
                filename = newer
        if doc is None:
            self.note(f"schema file not found: {filename} (from {current})")
            return filename, key, None
        schema = doc.get("definitions", {}).get(key)
        if schema is None:
            self.note(f"definition {key} not found in {filename} (from {current})")
        return filename, key, schema

    def resolve(self, schema: dict[str, Json], file: str, key: str) -> Resolved:
        """Follow $ref and anyOf; outer keywords win over referenced ones."""
        merged: dict[str, Json] = {}
        nullable = False
        seen: set[tuple[str, str]] = set()
        while True:
            for name in self.MERGE_KEYS:
                if name in schema and name not in merged:
                    merged[name] = schema[name]
            if "$ref" in schema:
                ref = schema["$ref"]
                if ref.endswith(ODATA_ID_REF):
                    return Resolved({}, file, key, nullable, True, merged)
                file, key, target = self.lookup(ref, file)
                if target is None and file == f"{key}.json":
                    # Entity in a schema not in the bundle (e.g. Swordfish):
                    # references to resources are links.
                    self.note(f"{file} absent: reference to {key} taken as a link")
                    return Resolved({}, file, key, nullable, True, merged)
                if target is None or (file, key) in seen:
                    if target is not None:
                        self.note(f"$ref cycle at {file}#{key}")
                    return Resolved({}, file, key, nullable, False, merged)
                seen.add((file, key))
                schema = target
                continue
            if "anyOf" in schema:
                alts = [a for a in schema["anyOf"] if a != {"type": "null"}]
                if len(alts) != len(schema["anyOf"]):
                    nullable = True
                refs = [a.get("$ref", "") for a in alts]
                if any(r.endswith(ODATA_ID_REF) for r in refs):
                    # A resource (or collection): its value is a link object.
                    return Resolved({}, file, key, nullable, True, merged)
                if len(alts) > 1 and all(
                    VERSIONED_RE.match(r.partition("#")[0].rsplit("/", 1)[-1])
                    for r in refs
                ):
                    # Version fan-out: use the newest versioned file present.
                    fname = refs[-1].partition("#")[0].rsplit("/", 1)[-1]
                    ptr = refs[-1].partition("#")[2]
                    schema = {"$ref": f"{self.newest_file(fname)}#{ptr}"}
                    continue
                if len(alts) == 1:
                    schema = alts[0]
                    continue
                self.note(f"unhandled anyOf in {file}#{key}")
                return Resolved({}, file, key, nullable, False, merged)
            return Resolved(schema, file, key, nullable, False, merged)

    def build(
        self,
        schema: dict[str, Json],
        file: str,
        key: str,
        *,
        parent_readonly: bool,
        required_on_create: bool,
        depth: int,
        stack: tuple[int, ...],
    ) -> PropSpec:
        res = self.resolve(schema, file, key)
        merged = res.merged
        target = res.schema
        readonly = bool(merged.get("readonly", target.get("readonly", parent_readonly)))
        deprecated = "deprecated" in merged or "deprecated" in target
        if res.link:
            types = ["object"]
        else:
            raw = target.get("type")
            if raw is None:
                if "enum" in target:
                    raw = "string"
                elif "properties" in target:
                    raw = "object"
                else:
                    raw = list(TYPE_ORDER[:-1])
                    self.note(f"no type for {res.file}#{res.key}; any type allowed")
            types = [raw] if isinstance(raw, str) else list(raw)
        if res.nullable:
            types.append("null")
        unknown = set(types) - set(TYPE_ORDER)
        if unknown:
            self.note(f"unknown JSON types {sorted(unknown)} in {res.file}#{res.key}")
        spec = PropSpec(
            types=tuple(t for t in TYPE_ORDER if t in types),
            readonly=readonly,
            required_on_create=required_on_create,
            link=res.link,
            deprecated=deprecated,
        )
        if res.link:
            return spec
        if "enum" in target:
            spec.enum = tuple(target["enum"])
        for name in ("minimum", "maximum"):
            value = merged.get(name, target.get(name))
            if value is not None:
                setattr(spec, name, value)
        pattern = merged.get("pattern", target.get("pattern"))
        if pattern is not None:
            spec.pattern = pattern
        if "array" in spec.types and isinstance(target.get("items"), dict):
            spec.items = self.build(
                target["items"],
                res.file,
                res.key,
                parent_readonly=readonly,
                required_on_create=False,
                depth=depth,
                stack=stack,
            )
            spec.link = spec.items.link
        if "object" in spec.types and self.closed(target):
            where = id(target)  # cached documents: identity marks a definition
            if where in stack:
                self.note(f"recursive type {res.file}#{res.key}: props left open")
            elif depth >= MAX_DEPTH:
                self.note(f"depth limit at {res.file}#{res.key}: props left open")
            else:
                spec.props = self.build_props(
                    target,
                    res.file,
                    res.key,
                    parent_readonly=readonly,
                    depth=depth + 1,
                    stack=(*stack, where),
                )
        return spec

    @staticmethod
    def closed(target: dict[str, Json]) -> bool:
        """Whether an object lists every property it may have."""
        if target.get("additionalProperties", True) is not False:
            return False
        patterns = target.get("patternProperties", {})
        return all(p == ANNOTATION_PATTERN for p in patterns)

    def build_props(
        self,
        target: dict[str, Json],
        file: str,
        key: str,
        *,
        parent_readonly: bool,
        depth: int,
        stack: tuple[int, ...],
    ) -> dict[str, PropSpec]:
        create = set(target.get("requiredOnCreate", ()))
        props: dict[str, PropSpec] = {}
        for name in sorted(target.get("properties", {})):
            if "@" in name:
                continue  # @odata.* and other annotations: validated generically
            readonly = parent_readonly or name == "Actions"
            props[name] = self.build(
                target["properties"][name],
                file,
                key,
                parent_readonly=readonly,
                required_on_create=name in create,
                depth=depth,
                stack=stack,
            )
            if name == "Actions":
                force_readonly(props[name])
        return props

    def action_parameters(
        self, resource: dict[str, Json], file: str, key: str
    ) -> dict[str, dict[str, PropSpec]]:
        actions_ref = resource.get("properties", {}).get("Actions")
        if actions_ref is None:
            return {}
        actions = self.resolve(actions_ref, file, key)
        result: dict[str, dict[str, PropSpec]] = {}
        for name in sorted(actions.schema.get("properties", {})):
            if not name.startswith("#"):
                continue
            action = self.resolve(
                actions.schema["properties"][name], actions.file, actions.key
            )
            params = action.schema.get("parameters", {})
            result[name] = {
                pname: self.build(
                    params[pname],
                    action.file,
                    action.key,
                    parent_readonly=False,
                    required_on_create=bool(params[pname].get("requiredParameter")),
                    depth=1,
                    stack=(id(action.schema),),
                )
                for pname in sorted(params)
            }
        return result


def force_readonly(spec: PropSpec) -> None:
    spec.readonly = True
    for child in (spec.props or {}).values():
        force_readonly(child)
    if spec.items is not None:
        force_readonly(spec.items)


PROP_CLASS = [
    "class Prop(NamedTuple):",
    '    """Compact spec of one property (or action parameter).',
    "",
    "    types: allowed JSON types (null present when nullable).",
    "    readonly: clients may not write it.",
    "    enum/minimum/maximum/pattern: value constraints from the schema.",
    "    props: properties of a closed object (None: open or not an object).",
    "    items: spec of array elements.",
    "    required_on_create: required in POST (for action parameters: required).",
    '    link: value is a link object {"@odata.id": ...} or an array of them.',
    "    deprecated: the schema marks it deprecated.",
    '    """',
    "",
    "    types: tuple[str, ...]",
    "    readonly: bool = False",
    "    enum: tuple[str, ...] | None = None",
    "    minimum: float | None = None",
    "    maximum: float | None = None",
    "    pattern: str | None = None",
    "    props: dict[str, Prop] | None = None",
    "    items: Prop | None = None",
    "    required_on_create: bool = False",
    "    link: bool = False",
    "    deprecated: bool = False",
]


def gen_schemas(shared: Path, out: Path, notes: list[str]) -> None:
    folder = shared / "json-schema"
    schemas = SchemaSet(folder, notes)
    versions: dict[str, str] = {}
    odata: dict[str, str] = {}
    specs: dict[str, Any] = {}
    required: dict[str, tuple[str, ...]] = {}
    actions: dict[str, Any] = {}

    for name in sorted(SERVED_TYPES):
        ver = schemas.newest.get(name)
        if ver is not None:
            file = f"{name}.v{ver}.json"
            doc = schemas.load(file)
            resource = doc["definitions"].get(name) if doc else None
            versions[name] = f"v{ver}"
            odata[name] = f"#{name}.v{ver}.{name}"
        else:
            file = f"{name}.json"
            doc = schemas.load(file)
            if doc is None:
                notes.append(f"no JSON schema for served type {name}")
                continue
            resource = doc["definitions"].get(name)
            if resource is not None and "anyOf" in resource:
                inline = [a for a in resource["anyOf"] if "$ref" not in a]
                resource = inline[0] if len(inline) == 1 else None
            versions[name] = ""
            odata[name] = f"#{name}.{name}"
        if not isinstance(resource, dict) or "properties" not in resource:
            notes.append(f"no resource definition {name} in {file}")
            continue
        props = schemas.build_props(
            resource,
            file,
            name,
            parent_readonly=False,
            depth=1,
            stack=(id(resource),),
        )
        specs[name] = {k: v.to_call() for k, v in props.items()}
        required[name] = tuple(resource.get("required", ()))
        params = schemas.action_parameters(resource, file, name)
        if params:
            actions[name] = {
                act: {p: s.to_call() for p, s in ps.items()}
                for act, ps in params.items()
            }

    sources = sorted(f"json-schema/{f}" for f in schemas.used)
    lines = header(sources, "json-schema/*.json")
    lines += [
        '"""Redfish resource property specs for the resource types bmcd serves."""',
        "",
        "from __future__ import annotations",
        "",
        "from typing import NamedTuple",
        "",
        "",
        *PROP_CLASS,
        "",
        "",
        render(versions, 0, "TYPE_VERSIONS: dict[str, str] = "),
        "",
        render(odata, 0, "ODATA_TYPES: dict[str, str] = "),
        "",
        render(required, 0, "REQUIRED: dict[str, tuple[str, ...]] = "),
        "",
        render(specs, 0, "SPECS: dict[str, dict[str, Prop]] = "),
        "",
        render(
            actions, 0, "ACTION_PARAMETERS: dict[str, dict[str, dict[str, Prop]]] = "
        ),
    ]
    write_module(out / "schemas.py", lines)


# --------------------------------------------------------------------------


def gen_init(out: Path) -> None:
    lines = header(["registries/*.json", "json-schema/*.json"], "")
    lines.append(
        '"""Modules generated from DMTF Redfish data; see tools/gen_redfish.py."""'
    )
    write_module(out / "__init__.py", lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--shared",
        type=Path,
        default=DEFAULT_SHARED,
        help="DMTF Redfish folder with json-schema/ and registries/",
    )
    parser.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, help="output package directory"
    )
    args = parser.parse_args(argv)
    shared: Path = args.shared
    out: Path = args.out
    if not (shared / "json-schema").is_dir() or not (shared / "registries").is_dir():
        parser.error(f"{shared} has no json-schema/ and registries/")
    out.mkdir(parents=True, exist_ok=True)
    notes: list[str] = []
    gen_init(out)
    gen_registries(shared, out)
    gen_privilege_map(shared, out, notes)
    gen_schemas(shared, out, notes)
    for text in notes:
        print(f"note: {text}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
