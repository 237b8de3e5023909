"""`fields=`: choose which fields of a response object to return, dot paths included.

    selection = select_fields("title,topics.label", Paper)   # validated once per request
    [selection.project(paper) for paper in papers]           # dicts with only those fields

A path names a field by its JSON name; a dot steps into a nested object, through lists and
optional values (`topics.label` keeps the label of every topic). Naming an object keeps all of
it, so `topics,topics.label` is `topics`. Fields come out in the type's own order, whatever the
order asked. Works for any msgspec Struct type, subclasses included (`SearchHit`'s `highlight`).
"""

from __future__ import annotations

import functools
from typing import Annotated, Any

import msgspec
from litestar.exceptions import ValidationException
from litestar.openapi.spec import Example
from litestar.params import Parameter

from service.api.problems import BadParameter

MAX_FIELDS_LENGTH = 1000

FieldsParam = Annotated[
    str | None,
    Parameter(
        description="Comma-separated fields to return (dot paths reach nested fields, "
        "e.g. `topics.label`); all fields when absent. An unknown field is a 400 problem.",
        examples=[Example(value="title,topics.label")],
        max_length=MAX_FIELDS_LENGTH,
    ),
]
"""The `fields` query parameter, as handlers declare it."""

# A selection tree: each selected field's JSON name -> its own subtree, or None for all of it.
Tree = dict[str, "Tree | None"]


class FieldSelectionError(ValueError):
    """A requested path does not name a field; `path` is the path as written."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(message)
        self.path = path


@functools.cache
def _fields_of(struct_type: type[msgspec.Struct]) -> dict[str, msgspec.inspect.Type]:
    info = msgspec.inspect.type_info(struct_type)
    if not isinstance(info, msgspec.inspect.StructType):
        raise TypeError(f"{struct_type!r} is not a msgspec Struct type")
    return {field.encode_name: field.type for field in info.fields}


def _object_fields(type_: msgspec.inspect.Type) -> dict[str, msgspec.inspect.Type] | None:
    """The fields a dot can step into from a value of this type; None for a plain value."""
    while True:
        if isinstance(type_, msgspec.inspect.Metadata):
            type_ = type_.type
        elif isinstance(
            type_,
            msgspec.inspect.ListType
            | msgspec.inspect.SetType
            | msgspec.inspect.FrozenSetType
            | msgspec.inspect.VarTupleType,
        ):
            type_ = type_.item_type
        elif isinstance(type_, msgspec.inspect.UnionType):
            inner = [t for t in type_.types if not isinstance(t, msgspec.inspect.NoneType)]
            if len(inner) != 1:
                return None
            type_ = inner[0]
        elif isinstance(type_, msgspec.inspect.StructType):
            return _fields_of(type_.cls)
        else:
            return None


class FieldSelection:
    """Validated field paths for one Struct type; projects its instances onto those fields."""

    def __init__(self, struct_type: type[msgspec.Struct], paths: list[str]) -> None:
        """Check every path against `struct_type`; FieldSelectionError names a bad one."""
        if not paths:
            raise FieldSelectionError("", "no field given")
        tree: Tree = {}
        for path in paths:
            _add_path(tree, _fields_of(struct_type), path)
        self.struct_type = struct_type
        self.paths = tuple(paths)
        self._tree = _ordered(tree, _fields_of(struct_type))

    def project(self, obj: msgspec.Struct) -> dict[str, Any]:
        """The object as JSON-ready builtins, keeping only the selected fields."""
        projected: dict[str, Any] = _project(msgspec.to_builtins(obj), self._tree)
        return projected


def _add_path(tree: Tree, fields: dict[str, msgspec.inspect.Type], path: str) -> None:
    node: Tree = tree
    parts = path.split(".")
    for depth, name in enumerate(parts):
        here = ".".join(parts[: depth + 1])
        if not name:
            raise FieldSelectionError(path, f"empty field name in {path!r}")
        if name not in fields:
            known = ", ".join(fields)
            raise FieldSelectionError(here, f"unknown field {here!r} (known here: {known})")
        last = depth == len(parts) - 1
        if name in node and node[name] is None:
            return  # the whole field is already selected
        if last:
            node[name] = None
            return
        nested = _object_fields(fields[name])
        if nested is None:
            raise FieldSelectionError(here, f"field {here!r} has no nested fields")
        child = node.get(name)
        if child is None:
            child = node[name] = {}
        node, fields = child, nested


def _ordered(tree: Tree, fields: dict[str, msgspec.inspect.Type]) -> Tree:
    """The tree with keys in the type's field order, recursively."""
    ordered: Tree = {}
    for name, type_ in fields.items():
        if name not in tree:
            continue
        sub = tree[name]
        nested = _object_fields(type_)
        ordered[name] = None if sub is None or nested is None else _ordered(sub, nested)
    return ordered


def _project(value: Any, tree: Tree) -> Any:
    if isinstance(value, dict):
        return {
            name: value[name] if sub is None else _project(value[name], sub)
            for name, sub in tree.items()
            if name in value
        }
    if isinstance(value, list):
        return [_project(item, tree) for item in value]
    return value  # null where an object may be


def select_fields(spec: str, struct_type: type[msgspec.Struct]) -> FieldSelection:
    """Parse `a,b.c` into a selection over `struct_type`; FieldSelectionError on a bad path."""
    paths = [part.strip() for part in spec.split(",")]
    if not all(paths):
        raise FieldSelectionError("", f"empty field name in {spec!r}")
    return FieldSelection(struct_type, paths)


def fields_param(
    spec: str | None,
    struct_type: type[msgspec.Struct],
    name: str = "fields",
    *,
    in_body: bool = False,
) -> FieldSelection | None:
    """The selection a request asked for (None: every field). A bad one is a problem naming
    `name`: 400 for a query parameter, 422 (like any invalid body field) when `in_body`."""
    if spec is None:
        return None
    try:
        return select_fields(spec, struct_type)
    except FieldSelectionError as error:
        if in_body:
            raise ValidationException(
                detail=f"invalid field {name!r}: {error}",
                extra=[{"key": name, "message": str(error), "source": "body"}],
            ) from None
        raise BadParameter(name, str(error)) from None
