"""Redfish query parameters (DSP0266 "Query parameters"), applied to rendered bodies.

:func:`parse_query` turns a request's query string into :class:`QueryOptions`,
raising the Base-registry errors DSP0266 asks for; :func:`apply_query` then
applies those options to any rendered resource body, fetching linked resources
through a callback so that this module knows nothing about routes.
"""

from __future__ import annotations

import copy
import logging
import re
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, Literal, TypeAlias
from urllib.parse import quote

from multidict import MultiMapping

from bmcd.core.errors import RedfishError

_LOGGER = logging.getLogger(__name__)

MAX_EXPAND_LEVELS = 3
"""Largest ``$levels`` accepted in ``$expand``."""

MAX_EXPANDED = 500
"""Most links one request may expand; later links stay links."""

MAX_TOP = 1000
"""Largest ``$top`` accepted."""

MAX_SKIP = 2**31 - 1
"""Largest ``$skip`` accepted."""

MAX_FILTER_DEPTH = 32
"""Deepest nesting of parentheses and ``not`` in ``$filter``."""

SUPPORTED_FEATURES: dict[str, Any] = {
    "DeepOperations": {"DeepPATCH": False, "DeepPOST": False},
    "ExcerptQuery": False,
    "ExpandQuery": {
        "ExpandAll": True,
        "Levels": True,
        "Links": True,
        "MaxLevels": MAX_EXPAND_LEVELS,
        "NoLinks": True,
    },
    "FilterQuery": True,
    "FilterQueryComparisonOperations": True,
    "FilterQueryCompoundOperations": True,
    "OnlyMemberQuery": True,
    "SelectQuery": True,
    "TopSkipQuery": True,
}
"""ServiceRoot ``ProtocolFeaturesSupported`` for this module; copy before changing."""

Fetch = Callable[[str], Awaitable[dict[str, Any] | None]]

_BAD = HTTPStatus.BAD_REQUEST

# Kept by $select at every level, as DSP0266 requires for the resource itself.
_ALWAYS_SELECTED = frozenset(
    {"@odata.id", "@odata.type", "@odata.context", "@odata.etag"}
)

_KNOWN = frozenset({"only", "$select", "$expand", "$filter", "$top", "$skip"})


# --- $expand -----------------------------------------------------------------

_EXPAND = re.compile(r"([*.~])(?:\(\$levels=([0-9]+)\))?", re.ASCII)


@dataclass(frozen=True)
class Expand:
    """A parsed ``$expand``: which links (``*``, ``.``, ``~``) and how deep."""

    mode: Literal["*", ".", "~"]
    levels: int = 1

    def wants(self, under_links: bool) -> bool:
        """Whether a link found (or not) under a ``Links`` property is expanded."""
        if self.mode == "*":
            return True
        return under_links == (self.mode == "~")

    def __str__(self) -> str:
        if self.levels == 1:
            return self.mode
        return f"{self.mode}($levels={self.levels})"


def _parse_expand(value: str) -> Expand:
    match = _EXPAND.fullmatch(value)
    if match is None:
        raise RedfishError.of(_BAD, "QueryParameterValueFormatError", value, "$expand")

    levels = match[2]
    if levels is None:
        return Expand(_mode(match[1]))

    # Long digit strings are out of range without being converted.
    count = int(levels) if len(levels.lstrip("0")) <= 3 else MAX_EXPAND_LEVELS + 1
    if not 1 <= count <= MAX_EXPAND_LEVELS:
        raise RedfishError.of(
            _BAD,
            "QueryParameterOutOfRange",
            levels,
            "$levels",
            f"1-{MAX_EXPAND_LEVELS}",
        )
    return Expand(_mode(match[1]), count)


def _mode(char: str) -> Literal["*", ".", "~"]:
    # Spelled out so that the Literal type holds without a cast.
    if char == "*":
        return "*"
    return "." if char == "." else "~"


# --- $filter -----------------------------------------------------------------


class _Missing:
    """A property the resource does not have; unequal to every value."""


_MISSING = _Missing()

_COMPARISONS = frozenset({"eq", "ne", "gt", "ge", "lt", "le"})
_KEYWORDS = _COMPARISONS | {"and", "or", "not", "true", "false", "null"}

_SPACE = re.compile(r"\s*", re.ASCII)
_TOKEN = re.compile(
    r"""(?:
        (?P<open>\() | (?P<close>\)) |
        (?P<string>'(?:[^']|'')*') |
        (?P<number>-?[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?)(?![\w@.#/]) |
        (?P<word>[A-Za-z_@#][\w@.#]*(?:/[A-Za-z_@#][\w@.#]*)*)
    )""",
    re.ASCII | re.VERBOSE,
)


@dataclass(frozen=True)
class _Literal:
    value: Any


@dataclass(frozen=True)
class _Path:
    segments: tuple[str, ...]


@dataclass(frozen=True)
class _Not:
    operand: _Node


@dataclass(frozen=True)
class _Logical:
    # n-ary, so that a long chain of "or" does not nest (or recurse) deeply
    op: Literal["and", "or"]
    operands: tuple[_Node, ...]


@dataclass(frozen=True)
class _Compare:
    op: str
    left: _Node
    right: _Node


_Node = _Literal | _Path | _Not | _Logical | _Compare


@dataclass(frozen=True)
class FilterExpr:
    """A parsed ``$filter``: its source text and expression tree."""

    text: str
    root: _Node = field(repr=False, compare=False)

    def matches(self, resource: Mapping[str, Any]) -> bool:
        """Whether a resource body satisfies the expression."""
        return _evaluate(self.root, resource) is True


@dataclass(frozen=True)
class _Token:
    kind: str
    text: str


def parse_filter(text: str) -> FilterExpr:
    """Parse a ``$filter`` value with the DSP0266 grammar."""
    parser = _FilterParser(text)
    root = parser.expression(0)
    parser.expect_end()

    # A string, number or null can never be true: a type error, not no match.
    _check_boolean(root, text)
    return FilterExpr(text, root)


class _FilterParser:
    """Recursive descent; precedence: () > not > comparisons > and > or."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = list(self._tokenize())
        self.position = 0

    def _tokenize(self) -> Iterator[_Token]:
        position = 0
        while True:
            space = _SPACE.match(self.text, position)
            position = space.end() if space else position
            if position == len(self.text):
                return
            match = _TOKEN.match(self.text, position)
            if match is None or match.lastgroup is None:
                raise self.error()
            position = match.end()
            kind, word = match.lastgroup, match[match.lastgroup]
            if kind == "word" and word in _KEYWORDS:
                kind = word
            yield _Token(kind, word)

    def error(self) -> RedfishError:
        return RedfishError.of(
            _BAD, "QueryParameterValueFormatError", self.text, "$filter"
        )

    def peek(self) -> str | None:
        if self.position < len(self.tokens):
            return self.tokens[self.position].kind
        return None

    def take(self) -> _Token:
        if self.position >= len(self.tokens):
            raise self.error()
        token = self.tokens[self.position]
        self.position += 1
        return token

    def expect_end(self) -> None:
        if self.position != len(self.tokens):
            raise self.error()

    def expression(self, depth: int) -> _Node:
        # Bounded so that a hostile query cannot exhaust the stack.
        if depth > MAX_FILTER_DEPTH:
            raise self.error()

        operands = [self.conjunction(depth)]
        while self.peek() == "or":
            self.take()
            operands.append(self.conjunction(depth))
        return operands[0] if len(operands) == 1 else _Logical("or", tuple(operands))

    def conjunction(self, depth: int) -> _Node:
        operands = [self.comparison(depth)]
        while self.peek() == "and":
            self.take()
            operands.append(self.comparison(depth))
        return operands[0] if len(operands) == 1 else _Logical("and", tuple(operands))

    def comparison(self, depth: int) -> _Node:
        node = self.unary(depth)
        op = self.peek()
        if op in _COMPARISONS:
            self.take()
            node = _Compare(str(op), node, self.unary(depth))
        return node

    def unary(self, depth: int) -> _Node:
        if self.peek() != "not":
            return self.primary(depth)

        self.take()
        if depth + 1 > MAX_FILTER_DEPTH:
            raise self.error()
        return _Not(self.unary(depth + 1))

    def primary(self, depth: int) -> _Node:
        token = self.take()
        if token.kind == "open":
            node = self.expression(depth + 1)
            if self.take().kind != "close":
                raise self.error()
            return node
        if token.kind == "string":
            return _Literal(token.text[1:-1].replace("''", "'"))
        if token.kind == "number":
            try:
                return _Literal(_number(token.text))
            except ValueError:  # more digits than int() converts
                raise self.error() from None
        if token.kind in ("true", "false", "null"):
            return _Literal({"true": True, "false": False}.get(token.kind))
        if token.kind == "word":
            return _Path(tuple(token.text.split("/")))
        raise self.error()


def _number(text: str) -> int | float:
    if any(c in text for c in ".eE"):
        return float(text)
    return int(text)


def _check_boolean(node: _Node, text: str) -> None:
    if isinstance(node, _Literal) and not isinstance(node.value, bool):
        raise RedfishError.of(_BAD, "QueryParameterValueTypeError", text, "$filter")
    if isinstance(node, _Not):
        _check_boolean(node.operand, text)
    elif isinstance(node, _Logical):
        for operand in node.operands:
            _check_boolean(operand, text)


def _evaluate(node: _Node, resource: Mapping[str, Any]) -> Any:
    if isinstance(node, _Literal):
        return node.value
    if isinstance(node, _Path):
        return _resolve(resource, node.segments)
    if isinstance(node, _Not):
        value = _evaluate(node.operand, resource)
        return not value if isinstance(value, bool) else _MISSING
    if isinstance(node, _Logical):
        results = (_evaluate(o, resource) is True for o in node.operands)
        return all(results) if node.op == "and" else any(results)
    return _compare(
        node.op, _evaluate(node.left, resource), _evaluate(node.right, resource)
    )


def _resolve(resource: Mapping[str, Any], segments: tuple[str, ...]) -> Any:
    value: Any = resource
    for segment in segments:
        if not isinstance(value, Mapping) or segment not in value:
            return _MISSING
        value = value[segment]
    return value


def _compare(op: str, left: Any, right: Any) -> bool:
    if op == "eq":
        return _equal(left, right)
    if op == "ne":
        return not _equal(left, right)

    # Ordering is defined only between two numbers or two strings.
    if _is_number(left) and _is_number(right):
        pass
    elif not (isinstance(left, str) and isinstance(right, str)):
        return False

    if op == "gt":
        return bool(left > right)
    if op == "ge":
        return bool(left >= right)
    if op == "lt":
        return bool(left < right)
    return bool(left <= right)


def _equal(left: Any, right: Any) -> bool:
    # Python says True == 1; JSON does not. Missing and containers never equal.
    if _is_number(left) and _is_number(right):
        return bool(left == right)
    if isinstance(left, (str, bool)) or left is None:
        return type(left) is type(right) and left == right
    return False


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


# --- $select -----------------------------------------------------------------

_SELECT_PATH = re.compile(r"[A-Za-z_@#][\w@.#]*(?:/[A-Za-z_@#][\w@.#]*)*", re.ASCII)

# A selection tree: a child of None means the whole property.
_Selection: TypeAlias = dict[str, "_Selection | None"]


def _parse_select(value: str) -> tuple[str, ...]:
    paths = tuple(part.strip() for part in value.split(","))
    if not all(_SELECT_PATH.fullmatch(path) for path in paths):
        raise RedfishError.of(_BAD, "QueryParameterValueFormatError", value, "$select")
    return paths


def _selection(paths: tuple[str, ...]) -> _Selection:
    root: _Selection = {}
    for path in paths:
        node = root
        *parents, last = path.split("/")
        for name in parents:
            child = node.setdefault(name, {})
            if child is None:
                break  # an ancestor is already selected whole
            node = child
        else:
            node[last] = None
    return root


def _select(body: dict[str, Any], selection: _Selection) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in body.items():
        name, at, _ = key.partition("@")
        if key in _ALWAYS_SELECTED:
            result[key] = value
        elif key in selection:
            child = selection[key]
            if child is None:
                result[key] = value
            elif (narrowed := _select_value(value, child)) is not None:
                result[key] = narrowed
        elif at and name in selection:
            # A property's annotations (Members@odata.count) follow the property.
            result[key] = value
    return result


def _select_value(value: Any, selection: _Selection) -> Any:
    if isinstance(value, dict):
        narrowed = _select(value, selection)
        return narrowed or None
    if isinstance(value, list):
        # Objects in arrays stay, even emptied: fragment links count positions.
        items = [_select(item, selection) for item in value if isinstance(item, dict)]
        return items if items or not value else None
    return None


# --- $top / $skip ------------------------------------------------------------

_INTEGER = re.compile(r"-?[0-9]+", re.ASCII)


def _parse_count(value: str, name: str, maximum: int) -> int:
    if not _INTEGER.fullmatch(value):
        raise RedfishError.of(_BAD, "QueryParameterValueTypeError", value, name)

    # Long digit strings are out of range without being converted.
    digits = value.lstrip("-").lstrip("0")
    number = int(value) if len(digits) <= 18 else maximum + 1
    if not 0 <= number <= maximum:
        raise RedfishError.of(
            _BAD, "QueryParameterOutOfRange", value, name, f"0-{maximum}"
        )
    return number


# --- options -----------------------------------------------------------------


@dataclass(frozen=True)
class QueryOptions:
    """The query options of one GET request."""

    only: bool = False
    select: tuple[str, ...] | None = None
    expand: Expand | None = None
    filter: FilterExpr | None = None
    top: int | None = None
    skip: int | None = None

    def __post_init__(self) -> None:
        # DSP0266: only may not be combined with any other query parameter.
        others = (self.select, self.expand, self.filter, self.top, self.skip)
        if self.only and any(option is not None for option in others):
            raise RedfishError.of(_BAD, "QueryCombinationInvalid")

    def is_empty(self) -> bool:
        """Whether no query option was given."""
        return self == QueryOptions()


def parse_query(query: Mapping[str, str] | MultiMapping[str]) -> QueryOptions:
    """Parse a request's query parameters into :class:`QueryOptions`."""
    values: dict[str, str] = {}
    for name, value in query.items():
        if name not in _KNOWN:
            if name.startswith("$"):
                raise RedfishError.of(
                    HTTPStatus.NOT_IMPLEMENTED, "QueryParameterUnsupported", name
                )
            continue  # DSP0266: unknown parameters without "$" are ignored
        if name in values:
            raise RedfishError.of(_BAD, "QueryCombinationInvalid")
        values[name] = value

    only = "only" in values
    if values.get("only"):
        raise RedfishError.of(
            _BAD, "QueryParameterValueFormatError", values["only"], "only"
        )

    select = values.get("$select")
    expand = values.get("$expand")
    filter_ = values.get("$filter")
    top = values.get("$top")
    skip = values.get("$skip")
    return QueryOptions(
        only=only,
        select=None if select is None else _parse_select(select),
        expand=None if expand is None else _parse_expand(expand),
        filter=None if filter_ is None else parse_filter(filter_),
        top=None if top is None else _parse_count(top, "$top", MAX_TOP),
        skip=None if skip is None else _parse_count(skip, "$skip", MAX_SKIP),
    )


# --- applying ----------------------------------------------------------------


async def apply_query(
    body: dict[str, Any],
    options: QueryOptions,
    fetch: Fetch,
    *,
    page_size: int | None = None,
) -> dict[str, Any]:
    """Apply query options to a rendered body; linked resources come from fetch."""
    if page_size is not None and page_size < 1:
        raise ValueError(f"page_size must be positive, not {page_size}")

    resources = _Resources(fetch)
    is_collection = isinstance(body.get("Members"), list)
    if options.only:
        return await _only(body, resources) if is_collection else copy.deepcopy(body)

    collection_options = (options.filter, options.top, options.skip)
    if not is_collection and any(o is not None for o in collection_options):
        raise RedfishError.of(_BAD, "QueryNotSupportedOnResource")

    # DSP0266 order: $filter, $skip/$top (and paging), $expand, $select.
    result = copy.deepcopy(body)
    if is_collection:
        await _filter(result, options, resources)
        _page(result, options, page_size)
    if options.expand is not None:
        result = await _Expander(resources, options.expand).resource(result)
    if options.select is not None:
        result = _select(result, _selection(options.select))
    return result


class _Resources:
    """The fetch callback with a per-request cache: filter and expand share it."""

    def __init__(self, fetch: Fetch) -> None:
        self._fetch = fetch
        self._cache: dict[str, dict[str, Any] | None] = {}

    async def get(self, uri: str) -> dict[str, Any] | None:
        if uri not in self._cache:
            self._cache[uri] = await self._fetch(uri)
        return self._cache[uri]


def _link(value: Any) -> str | None:
    # A navigation link is an object holding nothing but a string @odata.id.
    if isinstance(value, dict) and value.keys() == {"@odata.id"}:
        uri = value["@odata.id"]
        if isinstance(uri, str):
            return uri
    return None


async def _only(body: dict[str, Any], resources: _Resources) -> dict[str, Any]:
    members = body["Members"]
    if len(members) == 1 and (uri := _link(members[0])) is not None:
        member = await resources.get(uri)
        if member is not None:
            return copy.deepcopy(member)
    return copy.deepcopy(body)


async def _filter(
    result: dict[str, Any], options: QueryOptions, resources: _Resources
) -> None:
    if options.filter is None:
        return

    kept = []
    for member in result["Members"]:
        # Members rendered inline are matched as they are.
        uri = _link(member)
        resource = member if uri is None else await resources.get(uri)
        if isinstance(resource, dict) and options.filter.matches(resource):
            kept.append(member)
    result["Members"] = kept
    result["Members@odata.count"] = len(kept)


def _page(result: dict[str, Any], options: QueryOptions, page_size: int | None) -> None:
    top = options.top if options.top is not None else page_size
    skip = options.skip or 0
    if top is None and skip == 0:
        return

    members = result["Members"]
    result.setdefault("Members@odata.count", len(members))
    end = len(members) if top is None else skip + top
    result["Members"] = members[skip:end]

    # $top=0 asks for nothing: a next link would lead nowhere new.
    if top and end < len(members):
        result["Members@odata.nextLink"] = _next_link(result, options, end)


def _next_link(result: dict[str, Any], options: QueryOptions, skip: int) -> str:
    # The next page keeps every option but the position; server paging stays so.
    parameters = [("$skip", str(skip))]
    if options.top is not None:
        parameters.append(("$top", str(options.top)))
    if options.filter is not None:
        parameters.append(("$filter", options.filter.text))
    if options.expand is not None:
        parameters.append(("$expand", str(options.expand)))
    if options.select is not None:
        parameters.append(("$select", ",".join(options.select)))

    base = str(result.get("@odata.id", "")).partition("?")[0]
    query = "&".join(f"{k}={quote(v, safe='*.~()$/,@')}" for k, v in parameters)
    return f"{base}?{query}"


def _normalized(uri: str) -> str:
    return uri.partition("?")[0].rstrip("/")


class _Expander:
    """One request's $expand: a shared budget, cache and loop guard."""

    def __init__(self, resources: _Resources, expand: Expand) -> None:
        self._resources = resources
        self._expand = expand
        self._budget = MAX_EXPANDED
        self._warned = False

    async def resource(self, body: dict[str, Any]) -> dict[str, Any]:
        uri = body.get("@odata.id")
        chain = (_normalized(uri),) if isinstance(uri, str) else ()
        return await self._object(body, self._expand.levels, False, chain)

    async def _object(
        self,
        value: dict[str, Any],
        levels: int,
        under_links: bool,
        chain: tuple[str, ...],
    ) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for key, item in value.items():
            # Annotations (@odata.id, @Redfish.Settings, X@odata.count) stay.
            if "@" in key:
                result[key] = item
            else:
                links = under_links or key == "Links"
                result[key] = await self._value(item, levels, links, chain)
        return result

    async def _value(
        self, value: Any, levels: int, under_links: bool, chain: tuple[str, ...]
    ) -> Any:
        if isinstance(value, list):
            return [await self._value(v, levels, under_links, chain) for v in value]
        if not isinstance(value, dict):
            return value

        uri = _link(value)
        if uri is None:
            return await self._object(value, levels, under_links, chain)
        if not self._expand.wants(under_links) or not self._allowed(uri, chain):
            return value

        if self._budget == 0:
            if not self._warned:
                self._warned = True
                _LOGGER.warning(
                    "Expansion of %s stopped at %d links",
                    chain[0] if chain else "a resource",
                    MAX_EXPANDED,
                )
            return value
        self._budget -= 1

        fetched = await self._resources.get(uri)
        if fetched is None:
            return value
        target = copy.deepcopy(fetched)
        if levels <= 1:
            return target
        inner = (*chain, _normalized(uri))
        return await self._object(target, levels - 1, False, inner)

    @staticmethod
    def _allowed(uri: str, chain: tuple[str, ...]) -> bool:
        # Fragments point into a resource, not at one: not expandable.
        if "#" in uri:
            return False

        # Loop guard: never the resource itself, an enclosing one, or a parent.
        target = _normalized(uri)
        return not any(
            seen == target or seen.startswith(target + "/") for seen in chain
        )
