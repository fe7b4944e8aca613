"""Loading mapping specs: one YAML file per flat-file kind and version (``mappings/*.yaml``), checked when loaded.

Every problem is a :class:`SpecError` naming the file, the column and the key, so a plan editing a layout
learns what to fix before any file is read. The YAML format is documented in ``mappings/README.md``.
"""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import yaml

from fhir_clr.clr.codes import CodeList, CodeLists
from fhir_clr.clr.config import DEFAULT_PROFILES_DIR, load_rules
from fhir_clr.config import BUNDLED_MAPPINGS_DIR
from fhir_clr.mapping.headers import normalize_header
from fhir_clr.mapping.spec import NO_TARGET, ColumnSpec, MappingSpec
from fhir_clr.mapping.targets import TargetError, TargetPath, parse_target
from fhir_clr.mapping.values import (
    CODE_FORMATS,
    DATE_FORMATS,
    TYPES,
    boolean_labels,
    check_phone_format,
    parse_cell,
)

DEFAULT_MAPPINGS_DIR = BUNDLED_MAPPINGS_DIR

_TOP_KEYS = {"id", "kind", "program", "version", "title", "match", "columns"}
_OPTIONAL_TOP_KEYS = {"known_extra_headers"}
_COLUMN_KEYS = {"name", "header", "aliases", "type", "format", "required", "code_system", "default",
                "max_length", "pattern", "target"}
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_ID = re.compile(r"^[a-z][a-z0-9-]*$")
_VERSION = re.compile(r"^\d+(\.\d+)*$")
_TEXT_TYPES = {"string", "cin", "email"}
_LEAF_TYPES = {"string": {"string", "markdown"}, "cin": {"string"}, "npi": {"string"}, "phone": {"string"},
               "email": {"string"}, "date": {"date", "dateTime"}, "code": {"Coding", "CodeableConcept"},
               "integer": {"integer"}, "boolean": {"boolean"}}


class SpecError(ValueError):
    """A mapping spec that cannot be used; the message names the file, column and key."""


def load_spec(path: Path | str, *, rules: dict[str, Any], codes: CodeLists, profiles_dir: Path | str) -> MappingSpec:
    """Load and check one spec file against the rules configuration and the code lists of ``profiles_dir``."""
    path = Path(path)
    profiles = Path(profiles_dir)
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except OSError as exc:
        raise SpecError(f"{path}: cannot read ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        raise SpecError(f"{path}: not valid YAML ({exc})") from None
    return _Loader(path, rules, profiles, codes).spec(data)


def load_specs(directory: Path | str, **options: Any) -> dict[str, MappingSpec]:
    """Every ``*.yaml`` spec of ``directory`` by id; ``options`` as for :func:`load_spec`."""
    specs: dict[str, MappingSpec] = {}
    for path in sorted([*Path(directory).glob("*.yaml"), *Path(directory).glob("*.yml")]):
        spec = load_spec(path, **options)
        if spec.id in specs:
            raise SpecError(f"{path}: id {spec.id!r} is already used by {specs[spec.id].source.name}")
        specs[spec.id] = spec
    return specs


def bundled_specs() -> dict[str, MappingSpec]:
    """The specs shipped with the package (``mappings/`` against the shipped rules and ``profiles/``), read
    afresh: for tests and tools without :class:`~fhir_clr.config.Settings` (the server loads its own once)."""
    return load_specs(DEFAULT_MAPPINGS_DIR, rules=load_rules(), codes=CodeLists.from_directory(DEFAULT_PROFILES_DIR),
                      profiles_dir=DEFAULT_PROFILES_DIR)


class _Loader:
    """Checks one parsed YAML document and builds its :class:`MappingSpec`."""

    def __init__(self, path: Path, rules: dict[str, Any], profiles: Path, codes: CodeLists) -> None:
        self.path, self.rules, self.profiles, self.codes = path, rules, profiles, codes
        self.code_ids = codes.keys()
        self.kinds = set(codes["file-types"].concepts) if "file-types" in self.code_ids else set()

    def fail(self, message: str, column: str | None = None, key: str | None = None) -> SpecError:
        where = "".join([f": column {column!r}" if column else "", f": key {key!r}" if key else ""])
        return SpecError(f"{self.path}{where}: {message}")

    def spec(self, data: Any) -> MappingSpec:
        if not isinstance(data, dict):
            raise self.fail("the document must be a mapping of id, kind, program, version, title, match, columns")
        for key in sorted(set(data) - _TOP_KEYS - _OPTIONAL_TOP_KEYS):
            raise self.fail("unknown key", key=key)
        for key in sorted(_TOP_KEYS - set(data)):
            raise self.fail("missing", key=key)
        text = {k: data[k] for k in ("id", "kind", "program", "version", "title")}
        for key, value in text.items():
            if not isinstance(value, str) or not value.strip():
                raise self.fail("must be a non-empty string (quote numbers)", key=key)
        if not _ID.match(text["id"]):
            raise self.fail("lower-case letters, digits and '-'", key="id")
        if self.kinds and text["kind"] not in self.kinds:
            raise self.fail(f"not a file type of CodeSystem file-types ({', '.join(sorted(self.kinds))})", key="kind")
        if not _NAME.match(text["program"]):
            raise self.fail("a lower-case id such as ecm or cs", key="program")
        if not _VERSION.match(text["version"]):
            raise self.fail("dotted numbers such as 1.0.0", key="version")
        columns = self.columns(data["columns"])
        names = {c.name for c in columns}
        match = data["match"]
        if not isinstance(match, list) or not match or not all(isinstance(m, str) for m in match):
            raise self.fail("a non-empty list of column names", key="match")
        for name in match:
            if name not in names:
                raise self.fail(f"names unknown column {name!r}", key="match")
        return MappingSpec(text["id"], text["kind"], text["program"], text["version"], text["title"].strip(),
                           tuple(match), tuple(columns), self.path, self.rules.get("timezone", "UTC"),
                           self.known_extra(data.get("known_extra_headers", []), columns))

    def known_extra(self, items: Any, columns: list[ColumnSpec]) -> tuple[str, ...]:
        """Headers some plans' variants add that have no column here: read past, not reported as unknown."""
        if not isinstance(items, list) or not all(isinstance(i, str) and normalize_header(i) for i in items):
            raise self.fail("a list of header texts", key="known_extra_headers")
        labels = {normalize_header(label) for c in columns for label in (c.header, *c.aliases)}
        for item in items:
            if normalize_header(item) in labels:
                raise self.fail(f"{item!r} is already a column's header or alias", key="known_extra_headers")
        return tuple(i.strip() for i in items)

    def columns(self, items: Any) -> list[ColumnSpec]:
        if not isinstance(items, list) or not items:
            raise self.fail("a non-empty list of columns", key="columns")
        columns: list[ColumnSpec] = []
        names: set[str] = set()
        labels: dict[str, str] = {}
        for number, item in enumerate(items, 1):
            column = self.column(item, number)
            if column.name in names:
                raise self.fail("duplicate column name", column.name, "name")
            names.add(column.name)
            for label in (column.header, *column.aliases):
                normalized = normalize_header(label)
                if normalized in labels:
                    raise self.fail(f"header or alias {label!r} reads the same as one of column "
                                    f"{labels[normalized]!r}", column.name, "aliases")
                labels[normalized] = column.name
            columns.append(column)
        self.check_targets(columns)
        return columns

    def column(self, item: Any, number: int) -> ColumnSpec:
        if not isinstance(item, dict):
            raise self.fail(f"column {number} must be a mapping")
        name = item.get("name")
        if not isinstance(name, str) or not _NAME.match(name):
            raise self.fail(f"column {number}: name must be snake_case", key="name")
        for key in sorted(set(item) - _COLUMN_KEYS):
            raise self.fail("unknown key", name, key)
        header = item.get("header")
        if not isinstance(header, str) or not normalize_header(header):
            raise self.fail("a header with letters or digits is required", name, "header")
        aliases = item.get("aliases", [])
        if not isinstance(aliases, list) or not all(isinstance(a, str) and normalize_header(a) for a in aliases):
            raise self.fail("a list of header texts", name, "aliases")
        kind = item.get("type", "string")
        if kind not in TYPES:
            raise self.fail(f"unknown type {kind!r} (one of {', '.join(TYPES)})", name, "type")
        required = item.get("required", False)
        if not isinstance(required, bool):
            raise self.fail("true or false", name, "required")
        column = ColumnSpec(name=name, header=header.strip(), type=kind, aliases=tuple(a.strip() for a in aliases),
                            format=self.format(item, name, kind), required=required,
                            code_system=item.get("code_system"), max_length=self.max_length(item, name, kind),
                            pattern=self.pattern(item, name, kind), target=str(item.get("target", NO_TARGET)),
                            code_list=self.code_list(item, name, kind))
        column = replace(column, path=self.target(column))
        if item.get("default") is not None:
            parsed = parse_cell(column, str(item["default"]))
            if parsed.error is not None:
                raise self.fail(f"the default is not a valid {kind} ({parsed.error.message})", name, "default")
            column = replace(column, default=parsed.value)
        return column

    def format(self, item: dict[str, Any], name: str, kind: str) -> str | None:
        fmt = item.get("format")
        if fmt is None:
            return None
        if not isinstance(fmt, str):
            raise self.fail("must be a string", name, "format")
        try:
            if kind == "date" and fmt not in DATE_FORMATS:
                raise ValueError(f"a date format is one of {', '.join(DATE_FORMATS)}")
            if kind == "code" and fmt not in CODE_FORMATS:
                raise ValueError(f"a code format is one of {', '.join(CODE_FORMATS)}")
            if kind == "boolean":
                boolean_labels(fmt)
            if kind == "phone":
                check_phone_format(fmt)
            if kind not in ("date", "code", "boolean", "phone"):
                raise ValueError(f"type {kind} takes no format")
        except ValueError as exc:
            raise self.fail(str(exc), name, "format") from None
        return fmt

    def max_length(self, item: dict[str, Any], name: str, kind: str) -> int | None:
        limit = item.get("max_length")
        if limit is None:
            return None
        if kind not in _TEXT_TYPES:
            raise self.fail(f"only for types {', '.join(sorted(_TEXT_TYPES))}", name, "max_length")
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
            raise self.fail("a positive integer", name, "max_length")
        return limit

    def pattern(self, item: dict[str, Any], name: str, kind: str) -> str | None:
        pattern = item.get("pattern")
        if pattern is None:
            if kind == "cin":
                raise self.fail("a cin column needs the CIN pattern (e.g. '[0-9]{8}[A-Z]')", name, "pattern")
            return None
        if kind not in ("string", "cin"):
            raise self.fail("only for types string and cin", name, "pattern")
        try:
            re.compile(pattern)
        except (re.error, TypeError) as exc:
            raise self.fail(f"not a regular expression ({exc})", name, "pattern") from None
        return pattern

    def code_list(self, item: dict[str, Any], name: str, kind: str) -> CodeList | None:
        system = item.get("code_system")
        if kind != "code":
            if system is not None:
                raise self.fail("only for code columns", name, "code_system")
            return None
        if system not in self.code_ids:
            raise self.fail(f"no CodeSystem {system!r} in {self.profiles} ({', '.join(self.code_ids)})",
                            name, "code_system")
        return self.codes[system]

    def target(self, column: ColumnSpec) -> TargetPath | None:
        if column.target == NO_TARGET:
            return None
        try:
            path = parse_target(column.target, identifier_systems=self.rules["identifier_systems"],
                                canonical_base=self.rules["canonical_base"], profiles_dir=self.profiles)
        except TargetError as exc:
            raise self.fail(str(exc), column.name, "target") from None
        if path.leaf.fhir_type not in _LEAF_TYPES[column.type]:
            raise self.fail(f"a {column.type} column cannot fill a {path.leaf.fhir_type} element", column.name,
                            "target")
        return path

    def check_targets(self, columns: list[ColumnSpec]) -> None:
        """Refuse two columns writing the same element, or one writing inside another's element."""
        seen: dict[tuple[Any, ...], str] = {}
        for column in columns:
            if column.path is None:
                continue
            key = (column.path.resource, *((s.element, s.match) for s in column.path.steps))
            for other_key, other in seen.items():
                shorter = min(len(key), len(other_key))
                if key[:shorter] == other_key[:shorter]:
                    raise self.fail(f"its target overlaps the target of column {other!r}", column.name, "target")
            seen[key] = column.name
