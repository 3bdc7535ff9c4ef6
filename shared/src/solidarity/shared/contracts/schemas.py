"""JSON Schema snapshots of every event and the envelope, and the breaking-change detector.

The snapshots under `snapshots/` are committed and ship with the wheel. The contract test
compares each event's current schema with its snapshot: a breaking change fails it (a
breaking change is a new `V<n>` class, never an edit), a compatible one only asks for the
snapshot to be regenerated with `solidarity contracts snapshot`.

Schemas are generated in pydantic's *validation* mode: the contract is what a consumer's
`model_validate` accepts, and in that mode `required` lists exactly the keys a producer
must send. Serialization mode describes what our own `model_dump` emits, which would hide
a consumer-side narrowing (a dropped `| None`, a new pattern) behind our producer's habits.

What counts as breaking, seen from a log where old and new messages live side by side:

- a property removed (a consumer that reads it loses it);
- a property's type changed, in either direction: `int | None` to `int` rejects old
  messages, `int` to `int | None` sends old consumers a null; a changed `format` too;
- an enum value removed, or an enum restriction put on a free value;
- an optional property made required, or a new required property (old producers do not
  send it);
- `additionalProperties` tightened, or a constraint tightened (a higher minimum, a lower
  maximum length, a new or changed pattern).

Compatible (additive): a new optional property, a new enum value, a required property made
optional, a loosened constraint. Descriptions, titles and defaults are not compared.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from solidarity.shared.contracts.envelope import Envelope
from solidarity.shared.contracts.registry import ALL_EVENTS

JsonSchema = dict[str, Any]

SNAPSHOT_DIR = Path(__file__).resolve().parent / "snapshots"

SNAPSHOT_MODELS: tuple[type[BaseModel], ...] = (*ALL_EVENTS, Envelope)
"""Every model with a committed snapshot: each event, then the envelope they travel in."""

_LOWER_BOUNDS = ("minimum", "exclusiveMinimum", "minLength", "minItems", "minProperties")
_UPPER_BOUNDS = ("maximum", "exclusiveMaximum", "maxLength", "maxItems", "maxProperties")


class BreakingChangeError(ValueError):
    """Regenerating a snapshot would hide a breaking change; add a new version instead."""

    def __init__(self, problems: Sequence[str]) -> None:
        super().__init__(
            "breaking changes against the committed snapshots:\n" + "\n".join(problems)
        )
        self.problems = list(problems)


def event_json_schema(cls: type[BaseModel]) -> JsonSchema:
    """The JSON Schema of an event (or the envelope) as a consumer validates it."""
    return cls.model_json_schema(mode="validation")


def snapshot_path(cls: type[BaseModel], directory: Path = SNAPSHOT_DIR) -> Path:
    return directory / f"{cls.__name__}.json"


def render_schema(schema: Mapping[str, Any]) -> str:
    """The schema exactly as it is committed: sorted keys, two-space indent, final newline."""
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


@dataclass
class SchemaComparison:
    """What changed between two schemas, split into breaking and compatible changes."""

    breaking: list[str] = field(default_factory=list)
    additive: list[str] = field(default_factory=list)


def compare_schemas(
    old_schema: Mapping[str, Any], new_schema: Mapping[str, Any]
) -> SchemaComparison:
    """Every difference that matters between an old and a new schema, `$ref`s resolved."""
    comparer = _SchemaComparer(old_schema, new_schema)
    comparer.compare(old_schema, new_schema, "")
    return comparer.result


def compatibility_problems(
    old_schema: Mapping[str, Any], new_schema: Mapping[str, Any]
) -> list[str]:
    """The breaking changes from `old_schema` to `new_schema`, one readable line each."""
    return compare_schemas(old_schema, new_schema).breaking


@dataclass
class SnapshotReport:
    """How the committed snapshots stand against the current models."""

    missing: list[str] = field(default_factory=list)
    breaking: list[str] = field(default_factory=list)
    outdated: list[str] = field(default_factory=list)
    orphaned: list[str] = field(default_factory=list)

    def problems(self) -> list[str]:
        return [*self.missing, *self.breaking, *self.orphaned, *self.outdated]


def snapshot_report(directory: Path = SNAPSHOT_DIR) -> SnapshotReport:
    """Compare every model's current schema with its snapshot in `directory`."""
    report = SnapshotReport()
    for cls in SNAPSHOT_MODELS:
        name = cls.__name__
        path = snapshot_path(cls, directory)
        if not path.is_file():
            report.missing.append(
                f"{name}: no snapshot {path.name}; run `solidarity contracts snapshot`"
            )
            continue
        text = path.read_text(encoding="utf-8")
        try:
            committed = _parse_snapshot(text, path)
        except ValueError as exc:
            report.breaking.append(f"{name}: {exc}")
            continue
        current = event_json_schema(cls)
        comparison = compare_schemas(committed, current)
        report.breaking.extend(f"{name}: breaking: {problem}" for problem in comparison.breaking)
        if not comparison.breaking and text != render_schema(current):
            changes = "; ".join(comparison.additive) or "descriptions, titles or defaults"
            report.outdated.append(f"{name}: needs regenerating (compatible change: {changes})")
    known = {snapshot_path(cls, directory).name for cls in SNAPSHOT_MODELS}
    if directory.is_dir():
        for path in sorted(directory.glob("*.json")):
            if path.name not in known:
                report.orphaned.append(
                    f"{path.stem}: snapshot {path.name} has no model; an event type was removed "
                    "or renamed (delete the snapshot only if no producer or consumer uses it)"
                )
    return report


def check_snapshots(directory: Path = SNAPSHOT_DIR) -> list[str]:
    """Every problem with the snapshots: missing, breaking, orphaned, then needing a refresh."""
    return snapshot_report(directory).problems()


def write_snapshots(directory: Path = SNAPSHOT_DIR, *, allow_breaking: bool = False) -> list[Path]:
    """Write every model's snapshot; returns the files created or changed.

    Refuses (with `BreakingChangeError`, writing nothing) when a snapshot would change in a
    breaking way, since regenerating would silence the contract test; `allow_breaking`
    is for the rare deliberate break of a contract nobody uses yet. Snapshots of removed
    models are left alone: deleting one is a decision for a person.
    """
    rendered = {snapshot_path(cls, directory): event_json_schema(cls) for cls in SNAPSHOT_MODELS}
    if not allow_breaking:
        problems: list[str] = []
        for cls in SNAPSHOT_MODELS:
            path = snapshot_path(cls, directory)
            if not path.is_file():
                continue
            try:
                committed = _parse_snapshot(path.read_text(encoding="utf-8"), path)
            except ValueError as exc:
                problems.append(f"{cls.__name__}: {exc}")
                continue
            problems.extend(
                f"{cls.__name__}: {problem}"
                for problem in compatibility_problems(committed, rendered[path])
            )
        if problems:
            raise BreakingChangeError(problems)
    directory.mkdir(parents=True, exist_ok=True)
    changed: list[Path] = []
    for path, schema in rendered.items():
        text = render_schema(schema)
        if path.is_file() and path.read_text(encoding="utf-8") == text:
            continue
        path.write_text(text, encoding="utf-8", newline="\n")
        changed.append(path)
    return changed


class _SchemaComparer:
    """Walks an old and a new schema side by side, resolving local `$ref`s in each."""

    def __init__(self, old_root: Mapping[str, Any], new_root: Mapping[str, Any]) -> None:
        self._old_root = old_root
        self._new_root = new_root
        # $ref pairs being compared further up the walk: a recursive model stops here.
        self._in_progress: set[tuple[str | None, str | None]] = set()
        self.result = SchemaComparison()

    def compare(self, old: Mapping[str, Any], new: Mapping[str, Any], path: str) -> None:
        refs = (old.get("$ref"), new.get("$ref"))
        if refs != (None, None):
            if refs in self._in_progress:
                return
            self._in_progress.add(refs)
        try:
            self._compare_resolved(
                _resolve(old, self._old_root), _resolve(new, self._new_root), path
            )
        finally:
            self._in_progress.discard(refs)

    def _breaking(self, path: str, message: str) -> None:
        self.result.breaking.append(f"{path or '(root)'}: {message}")

    def _additive(self, path: str, message: str) -> None:
        self.result.additive.append(f"{path or '(root)'}: {message}")

    def _compare_resolved(self, old: JsonSchema, new: JsonSchema, path: str) -> None:
        old_kinds = _variants_by_kind(old, self._old_root)
        new_kinds = _variants_by_kind(new, self._new_root)
        if set(old_kinds) != set(new_kinds):
            self._breaking(
                path, f"type changed from {_kinds_label(old_kinds)} to {_kinds_label(new_kinds)}"
            )
            return
        for kind in sorted(old_kinds):
            pairs = _pair_variants(old_kinds[kind], new_kinds[kind])
            if pairs is None:
                self._breaking(path, f"the number of {kind} alternatives changed")
                continue
            for old_variant, new_variant in pairs:
                self._compare_variant(old_variant, new_variant, path)

    def _compare_variant(self, old: JsonSchema, new: JsonSchema, path: str) -> None:
        if old.get("format") != new.get("format"):
            self._breaking(
                path, f"format changed from {old.get('format')!r} to {new.get('format')!r}"
            )
        self._compare_enum(old, new, path)
        self._compare_constraints(old, new, path)
        if "properties" in old or "properties" in new or _kind_of(old) == "object":
            self._compare_object(old, new, path)
        if _kind_of(old) == "array":
            self._compare_array(old, new, path)

    def _compare_enum(self, old: JsonSchema, new: JsonSchema, path: str) -> None:
        old_values, new_values = _enum_values(old), _enum_values(new)
        if new_values is None:
            if old_values is not None:
                self._additive(path, "no longer restricted to an enum")
            return
        if old_values is None:
            allowed = [new_values[key] for key in sorted(new_values)]
            self._breaking(path, f"now restricted to the values {allowed}")
            return
        for value in sorted(old_values.keys() - new_values.keys()):
            self._breaking(path, f"enum value {old_values[value]!r} removed")
        for value in sorted(new_values.keys() - old_values.keys()):
            self._additive(path, f"enum value {new_values[value]!r} added")

    def _compare_constraints(self, old: JsonSchema, new: JsonSchema, path: str) -> None:
        for keyword in (*_LOWER_BOUNDS, *_UPPER_BOUNDS):
            before, after = old.get(keyword), new.get(keyword)
            if before == after:
                continue
            is_lower = keyword in _LOWER_BOUNDS
            if before is None:
                tightened = True
            elif after is None:
                tightened = False
            else:
                tightened = after > before if is_lower else after < before
            change = f"{keyword} changed from {before!r} to {after!r}"
            if tightened:
                self._breaking(path, f"{change} (tightened)")
            else:
                self._additive(path, f"{change} (loosened)")
        for keyword in ("pattern", "multipleOf"):
            before, after = old.get(keyword), new.get(keyword)
            if before == after:
                continue
            if after is None:
                self._additive(path, f"{keyword} {before!r} dropped")
            else:
                self._breaking(path, f"{keyword} changed from {before!r} to {after!r}")
        if not old.get("uniqueItems", False) and new.get("uniqueItems", False):
            self._breaking(path, "items must now be unique")

    def _compare_object(self, old: JsonSchema, new: JsonSchema, path: str) -> None:
        old_props: Mapping[str, Any] = old.get("properties", {})
        new_props: Mapping[str, Any] = new.get("properties", {})
        old_required = set(old.get("required", ()))
        new_required = set(new.get("required", ()))
        for name in old_props:
            where = _join(path, name)
            if name not in new_props:
                self._breaking(where, "property removed")
                continue
            self.compare(old_props[name], new_props[name], where)
            if name in new_required and name not in old_required:
                self._breaking(where, "optional property made required")
            elif name in old_required and name not in new_required:
                self._additive(where, "required property made optional")
        for name in new_props:
            if name in old_props:
                continue
            where = _join(path, name)
            if name in new_required:
                self._breaking(where, "new required property (old producers do not send it)")
            else:
                self._additive(where, "new optional property")
        self._compare_additional(old, new, path)

    def _compare_additional(self, old: JsonSchema, new: JsonSchema, path: str) -> None:
        # JSON Schema's default is `true`: anything else is allowed.
        before = old.get("additionalProperties", True)
        after = new.get("additionalProperties", True)
        where = f"{path}{{}}"
        if before == after:
            return
        if after is True:
            self._additive(path, "additionalProperties loosened")
        elif after is False or before is True:
            self._breaking(path, f"additionalProperties tightened from {before!r} to {after!r}")
        elif before is False:
            self._additive(path, "additionalProperties loosened")
        else:
            self.compare(before, after, where)

    def _compare_array(self, old: JsonSchema, new: JsonSchema, path: str) -> None:
        old_prefix: list[Any] = old.get("prefixItems", [])
        new_prefix: list[Any] = new.get("prefixItems", [])
        if len(old_prefix) != len(new_prefix):
            self._breaking(
                path, f"tuple length changed from {len(old_prefix)} to {len(new_prefix)}"
            )
        for index, (before, after) in enumerate(zip(old_prefix, new_prefix, strict=False)):
            self.compare(before, after, f"{path}[{index}]")
        old_items = old.get("items", {})
        new_items = new.get("items", {})
        if isinstance(old_items, Mapping) and isinstance(new_items, Mapping):
            self.compare(old_items, new_items, f"{path}[]")
        elif old_items != new_items:
            self._breaking(path, f"items changed from {old_items!r} to {new_items!r}")


def _parse_snapshot(text: str, path: Path) -> JsonSchema:
    try:
        schema = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"snapshot {path.name} is not valid JSON ({exc})") from None
    if not isinstance(schema, dict):
        raise ValueError(f"snapshot {path.name} is not a JSON object")
    return schema


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _pointer(root: Mapping[str, Any], ref: str) -> JsonSchema:
    if not ref.startswith("#"):
        raise ValueError(f"only local $refs can be resolved, got {ref!r}")
    node: Any = root
    for part in ref[1:].lstrip("/").split("/") if ref != "#" else ():
        part = part.replace("~1", "/").replace("~0", "~")
        if not isinstance(node, Mapping) or part not in node:
            raise ValueError(f"unresolvable $ref {ref!r}")
        node = node[part]
    if not isinstance(node, Mapping):
        raise ValueError(f"$ref {ref!r} does not point at a schema")
    return dict(node)


def _resolve(schema: Mapping[str, Any], root: Mapping[str, Any]) -> JsonSchema:
    """The schema with a `$ref` (and a single-element `allOf`) replaced by its target.

    Keywords beside the `$ref` (pydantic puts `default` and `description` there) win.
    """
    resolved = dict(schema)
    seen: set[str] = set()
    while True:
        if "$ref" in resolved:
            ref = resolved.pop("$ref")
            if ref in seen:
                raise ValueError(f"$ref {ref!r} refers only to itself")
            seen.add(ref)
            resolved = {**_pointer(root, ref), **resolved}
        elif isinstance(resolved.get("allOf"), list):
            parts = resolved.pop("allOf")
            merged: JsonSchema = {}
            for part in parts:
                merged.update(_resolve(part, root))
            resolved = {**merged, **resolved}
        else:
            return resolved


def _variants(schema: JsonSchema, root: Mapping[str, Any]) -> Iterator[JsonSchema]:
    """The alternatives a value may take: `anyOf`/`oneOf` branches, `type` lists split."""
    branches = schema.get("anyOf") or schema.get("oneOf")
    if isinstance(branches, list):
        for branch in branches:
            yield from _variants(_resolve(branch, root), root)
        return
    kind = schema.get("type")
    if isinstance(kind, list):
        for single in kind:
            yield {**schema, "type": single}
        return
    yield schema


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _kind_of(schema: JsonSchema) -> str:
    kind = schema.get("type")
    if isinstance(kind, str):
        return kind
    values = _enum_values(schema)
    if values is not None:
        kinds = {_json_type(value) for value in values.values()}
        return kinds.pop() if len(kinds) == 1 else "enum"
    if "properties" in schema or "additionalProperties" in schema:
        return "object"
    if "items" in schema or "prefixItems" in schema:
        return "array"
    return "any"


def _variants_by_kind(schema: JsonSchema, root: Mapping[str, Any]) -> dict[str, list[JsonSchema]]:
    by_kind: dict[str, list[JsonSchema]] = {}
    for variant in _variants(schema, root):
        by_kind.setdefault(_kind_of(variant), []).append(variant)
    return by_kind


def _kinds_label(by_kind: Mapping[str, list[JsonSchema]]) -> str:
    return "|".join(sorted(by_kind)) or "nothing"


def _pair_variants(
    old: list[JsonSchema], new: list[JsonSchema]
) -> list[tuple[JsonSchema, JsonSchema]] | None:
    """Match alternatives of one kind: by title when there are several, else one to one."""
    if len(old) != len(new):
        return None
    if len(old) == 1:
        return [(old[0], new[0])]
    new_by_title = {variant.get("title"): variant for variant in new}
    if len(new_by_title) == len(new) and all(v.get("title") in new_by_title for v in old):
        return [(variant, new_by_title[variant.get("title")]) for variant in old]
    return list(zip(old, new, strict=True))


def _enum_values(schema: JsonSchema) -> dict[str, Any] | None:
    """The allowed values keyed by their JSON text (values may be unhashable), or None."""
    if "enum" in schema:
        values = list(schema["enum"])
    elif "const" in schema:
        values = [schema["const"]]
    else:
        return None
    return {json.dumps(value, sort_keys=True): value for value in values}
