"""Tests for bmcd.http.query: parsing and applying the Redfish query options."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
from multidict import MultiDict

from bmcd.core.errors import RedfishError
from bmcd.http import query
from bmcd.http.query import (
    MAX_EXPAND_LEVELS,
    MAX_TOP,
    SUPPORTED_FEATURES,
    Expand,
    QueryOptions,
    apply_query,
    parse_filter,
    parse_query,
)

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "redfish"

SYSTEMS = "/redfish/v1/Systems"
CHASSIS = "/redfish/v1/Chassis/1"
MANAGER = "/redfish/v1/Managers/1"


def link(uri: str) -> dict[str, str]:
    return {"@odata.id": uri}


def collection(uri: str, members: list[str]) -> dict[str, Any]:
    return {
        "@odata.id": uri,
        "@odata.type": "#ComputerSystemCollection.ComputerSystemCollection",
        "Name": "Computer System Collection",
        "Members": [link(m) for m in members],
        "Members@odata.count": len(members),
    }


def system(number: int, **extra: Any) -> dict[str, Any]:
    uri = f"{SYSTEMS}/{number}"
    body = {
        "@odata.id": uri,
        "@odata.type": "#ComputerSystem.v1_22_0.ComputerSystem",
        "@odata.etag": f'W/"{number}"',
        "Id": str(number),
        "Name": f"System {number}",
        "PowerState": "On" if number % 2 else "Off",
        "Status": {"State": "Enabled", "Health": "OK"},
        "ProcessorSummary": {"Count": number * 2},
        "Bios": link(f"{uri}/Bios"),
        "@Redfish.Settings": {"SettingsObject": link(f"{uri}/Settings")},
        "Links": {"Chassis": [link(CHASSIS)], "ManagedBy": [link(MANAGER)]},
    }
    body.update(extra)
    return body


def tree() -> dict[str, dict[str, Any]]:
    resources = {
        SYSTEMS: collection(SYSTEMS, [f"{SYSTEMS}/{n}" for n in (1, 2, 3)]),
        CHASSIS: {
            "@odata.id": CHASSIS,
            "@odata.type": "#Chassis.v1_25_0.Chassis",
            "Name": "Chassis",
            "Links": {
                "ComputerSystems": [link(f"{SYSTEMS}/{n}") for n in (1, 2, 3)],
                "ManagedBy": [link(MANAGER)],
            },
        },
        MANAGER: {
            "@odata.id": MANAGER,
            "@odata.type": "#Manager.v1_19_0.Manager",
            "Name": "BMC",
            "Links": {"ManagerForChassis": [link(CHASSIS)]},
        },
    }
    for number in (1, 2, 3):
        resources[f"{SYSTEMS}/{number}"] = system(number)
        resources[f"{SYSTEMS}/{number}/Bios"] = {
            "@odata.id": f"{SYSTEMS}/{number}/Bios",
            "@odata.type": "#Bios.v1_2_0.Bios",
            "Name": "BIOS",
        }
    return resources


class FakeFetch:
    """A fetch callback over a dict of URI -> body, counting its calls."""

    def __init__(self, resources: dict[str, dict[str, Any]]) -> None:
        self.resources = resources
        self.calls: list[str] = []

    async def __call__(self, uri: str) -> dict[str, Any] | None:
        self.calls.append(uri)
        return self.resources.get(uri)


@pytest.fixture
def resources() -> dict[str, dict[str, Any]]:
    return tree()


@pytest.fixture
def fetch(resources: dict[str, dict[str, Any]]) -> FakeFetch:
    return FakeFetch(resources)


@contextmanager
def error(status: int, key: str, *args: str) -> Iterator[None]:
    with pytest.raises(RedfishError) as info:
        yield
    assert info.value.status == status
    assert [(m.key, m.args) for m in info.value.messages] == [(key, args)]


async def run(
    body: dict[str, Any],
    fetch: FakeFetch,
    params: dict[str, str],
    page_size: int | None = None,
) -> dict[str, Any]:
    options = parse_query(params)
    return await apply_query(body, options, fetch, page_size=page_size)


def next_params(link_: str) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(link_).query, keep_blank_values=True))


# --- parse_query ---------------------------------------------------------------


def test_empty_query_is_empty() -> None:
    assert parse_query({}).is_empty()
    assert parse_query(MultiDict()).is_empty()


def test_unknown_parameters_without_dollar_are_ignored() -> None:
    assert parse_query({"foo": "bar", "excerpt": "", "top": "x"}).is_empty()


@pytest.mark.parametrize("name", ["$foo", "$levels", "$Top", "$count"])
def test_unknown_dollar_parameter_is_501(name: str) -> None:
    with error(501, "QueryParameterUnsupported", name):
        parse_query({name: "1"})


def test_duplicate_option_is_400() -> None:
    with error(400, "QueryCombinationInvalid"):
        parse_query(MultiDict([("$top", "1"), ("$top", "2")]))


def test_duplicate_unknown_plain_parameter_is_ignored() -> None:
    assert parse_query(MultiDict([("a", "1"), ("a", "2")])).is_empty()


def test_only_takes_no_value() -> None:
    assert parse_query({"only": ""}) == QueryOptions(only=True)
    with error(400, "QueryParameterValueFormatError", "yes", "only"):
        parse_query({"only": "yes"})


@pytest.mark.parametrize(
    "other",
    [
        {"$top": "1"},
        {"$skip": "1"},
        {"$select": "Name"},
        {"$expand": "."},
        {"$filter": "Id eq '1'"},
    ],
)
def test_only_combined_is_invalid(other: dict[str, str]) -> None:
    with error(400, "QueryCombinationInvalid"):
        parse_query({"only": "", **other})


def test_top_and_skip() -> None:
    options = parse_query({"$top": "5", "$skip": "10"})
    assert (options.top, options.skip) == (5, 10)
    assert not options.is_empty()
    assert parse_query({"$top": "0"}).top == 0
    assert parse_query({"$top": str(MAX_TOP)}).top == MAX_TOP
    assert parse_query({"$skip": "0"}).skip == 0


@pytest.mark.parametrize("name", ["$top", "$skip"])
@pytest.mark.parametrize("value", ["", "abc", "1.5", "+1", " 1", "1e3", "٣"])
def test_count_not_an_integer(name: str, value: str) -> None:
    with error(400, "QueryParameterValueTypeError", value, name):
        parse_query({name: value})


@pytest.mark.parametrize(
    ("name", "value", "bounds"),
    [
        ("$top", "-1", f"0-{MAX_TOP}"),
        ("$top", str(MAX_TOP + 1), f"0-{MAX_TOP}"),
        ("$top", "9" * 5000, f"0-{MAX_TOP}"),
        ("$skip", "-5", f"0-{query.MAX_SKIP}"),
        ("$skip", "1" + "0" * 40, f"0-{query.MAX_SKIP}"),
    ],
)
def test_count_out_of_range(name: str, value: str, bounds: str) -> None:
    with error(400, "QueryParameterOutOfRange", value, name, bounds):
        parse_query({name: value})


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("*", Expand("*", 1)),
        (".", Expand(".", 1)),
        ("~", Expand("~", 1)),
        (".($levels=2)", Expand(".", 2)),
        ("*($levels=1)", Expand("*", 1)),
        (f"~($levels={MAX_EXPAND_LEVELS})", Expand("~", MAX_EXPAND_LEVELS)),
    ],
)
def test_expand_forms(value: str, expected: Expand) -> None:
    assert parse_query({"$expand": value}).expand == expected


@pytest.mark.parametrize(
    "value",
    [
        "",
        "x",
        "**",
        "Links",
        "($levels=2)",
        ".($levels=)",
        ".($levels=a)",
        ".($levels=2",
        ".($levels=-1)",
        ".( $levels=2)",
        ".($Levels=2)",
    ],
)
def test_expand_bad_format(value: str) -> None:
    with error(400, "QueryParameterValueFormatError", value, "$expand"):
        parse_query({"$expand": value})


@pytest.mark.parametrize("levels", ["0", str(MAX_EXPAND_LEVELS + 1), "9" * 30])
def test_expand_levels_out_of_range(levels: str) -> None:
    bounds = f"1-{MAX_EXPAND_LEVELS}"
    with error(400, "QueryParameterOutOfRange", levels, "$levels", bounds):
        parse_query({"$expand": f"*($levels={levels})"})


def test_expand_renders_back() -> None:
    assert str(Expand(".", 2)) == ".($levels=2)"
    assert str(Expand("~")) == "~"


def test_select_paths() -> None:
    options = parse_query({"$select": "Name, Status/Health,@odata.id"})
    assert options.select == ("Name", "Status/Health", "@odata.id")


@pytest.mark.parametrize(
    "value", ["", "Name,", ",Name", "/Name", "Name/", "Status//Health", "Na me", "*"]
)
def test_select_bad_format(value: str) -> None:
    with error(400, "QueryParameterValueFormatError", value, "$select"):
        parse_query({"$select": value})


def test_filter_keeps_its_text() -> None:
    options = parse_query({"$filter": "Name eq 'a'"})
    assert options.filter is not None
    assert options.filter.text == "Name eq 'a'"


@pytest.mark.parametrize(
    "value",
    [
        "",
        "   ",
        "Name eq",
        "eq 'a'",
        "Name eq 'a",
        "Name eq 'a''",
        "Name == 'a'",
        "Name EQ 'a'",
        "(Name eq 'a'",
        "Name eq 'a')",
        "()",
        "Name eq 'a' and",
        "or Name eq 'a'",
        "Name eq 'a' Id eq '1'",
        "A eq 1 eq 2",
        "not",
        "Count gt 1abc",
        "Count gt 1.2.3",
        "Count gt 1.",
        "Status/ eq 'a'",
        'Name eq "a"',
        "Name eq 'a' & Id eq '1'",
        "(" * 40 + "Id eq '1'" + ")" * 40,
        "not " * 40 + "Flag",
        "Count eq " + "9" * 5000,
    ],
)
def test_filter_bad_syntax(value: str) -> None:
    with error(400, "QueryParameterValueFormatError", value, "$filter"):
        parse_query({"$filter": value})


@pytest.mark.parametrize(
    "value", ["'abc'", "3", "null", "Name eq 'a' and 5", "not 'a'", "(1) or Flag"]
)
def test_filter_not_boolean(value: str) -> None:
    with error(400, "QueryParameterValueTypeError", value, "$filter"):
        parse_query({"$filter": value})


def test_query_options_reject_only_with_others_when_built_directly() -> None:
    with error(400, "QueryCombinationInvalid"):
        QueryOptions(only=True, top=1)


# --- $filter evaluation --------------------------------------------------------

SAMPLE: dict[str, Any] = {
    "Name": "Node 1",
    "Quote": "it's",
    "Count": 4,
    "Ratio": 0.5,
    "Flag": True,
    "Off": False,
    "Nothing": None,
    "List": [1, 2],
    "Status": {"State": "Enabled", "Health": "OK", "Inner": {"Depth": 3}},
}


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        # equality and types
        ("Name eq 'Node 1'", True),
        ("Name ne 'Node 1'", False),
        ("Name eq 'node 1'", False),
        ("Quote eq 'it''s'", True),
        ("Count eq 4", True),
        ("Count eq 4.0", True),
        ("Count eq '4'", False),
        ("Flag eq true", True),
        ("Flag eq 1", False),
        ("Off eq false", True),
        ("Off eq 0", False),
        ("Nothing eq null", True),
        ("Nothing ne null", False),
        ("Name eq null", False),
        ("List eq 1", False),
        ("Status eq 'Enabled'", False),
        ("Ratio eq 5e-1", True),
        ("Count lt 1e999", True),
        ("Count lt " + "9" * 4000, True),
        ("Count eq Count", True),
        # numeric ordering
        ("Count gt 3", True),
        ("Count gt 4", False),
        ("Count ge 4", True),
        ("Count lt 4.5", True),
        ("Count le 3", False),
        ("Count gt -1", True),
        ("Ratio lt 1", True),
        # string ordering (code points)
        ("Name gt 'Node 0'", True),
        ("Name lt 'Node 2'", True),
        ("Name ge 'Node 1'", True),
        ("Name le 'A'", False),
        ("Name lt 'node'", True),
        # ordering between different types is never true
        ("Count gt '1'", False),
        ("Name lt 5", False),
        ("Flag gt false", False),
        ("Nothing lt 1", False),
        # missing properties are unequal to everything
        ("Missing eq 'x'", False),
        ("Missing ne 'x'", True),
        ("Missing eq null", False),
        ("Missing ne null", True),
        ("Missing gt 0", False),
        ("Missing le 0", False),
        ("Missing", False),
        ("not Missing", False),
        ("not (Missing eq 1)", True),
        # nested paths
        ("Status/Health eq 'OK'", True),
        ("Status/Inner/Depth ge 3", True),
        ("Status/Health/Deeper eq 'OK'", False),
        ("Name/Deeper ne 'OK'", True),
        # booleans, not, and, or
        ("Flag", True),
        ("Off", False),
        ("true", True),
        ("false", False),
        ("not Flag", False),
        ("not Off", True),
        ("not not Flag", True),
        ("not Name", False),
        ("Flag and Off", False),
        ("Flag or Off", True),
        ("Count eq 4 and Name eq 'Node 1'", True),
        ("Count eq 5 or Name eq 'Node 1'", True),
        ("Count eq 5 or Count eq 6 or Count eq 4", True),
        ("Count eq 4 and Count eq 5 and Flag", False),
        # precedence: not > comparison > and > or
        ("Flag or Off and Off", True),  # Flag or (Off and Off)
        ("(Flag or Off) and Off", False),
        ("Off and Off or Flag", True),  # (Off and Off) or Flag
        ("Off and (Off or Flag)", False),
        ("not Off eq true", True),  # (not Off) eq true
        ("not Flag eq false", True),  # (not Flag) eq false
        ("not (Count eq 4)", False),
        ("not (Count eq 4) or Flag", True),
        ("not (Count eq 4 or Flag)", False),
        ("((Count eq 4))", True),
        # spacing
        ("  Count  eq  4  ", True),
        ("(Count eq 4)and(Flag)", True),
        ("not(Off)", True),
        ("Name eq'Node 1'", True),
    ],
)
def test_filter_evaluation(expression: str, expected: bool) -> None:
    assert parse_filter(expression).matches(SAMPLE) is expected


def test_filter_long_chain_does_not_recurse() -> None:
    expression = " or ".join(["Count eq 5"] * 1500 + ["Count eq 4"])
    assert parse_filter(expression).matches(SAMPLE)
    assert not parse_filter(expression.replace("eq 4", "eq 6")).matches(SAMPLE)


def test_filter_nesting_up_to_the_bound() -> None:
    depth = query.MAX_FILTER_DEPTH
    assert parse_filter("(" * depth + "Flag" + ")" * depth).matches(SAMPLE)
    assert parse_filter("not " * depth + "Off").matches(SAMPLE) is (depth % 2 == 1)


# --- apply_query: no options, only ---------------------------------------------


async def test_no_options_returns_an_equal_copy(
    resources: dict[str, dict[str, Any]], fetch: FakeFetch
) -> None:
    body = resources[f"{SYSTEMS}/1"]
    result = await run(body, fetch, {})
    assert result == body
    assert result is not body
    assert result["Status"] is not body["Status"]
    assert fetch.calls == []


async def test_only_with_one_member_returns_the_member(
    resources: dict[str, dict[str, Any]], fetch: FakeFetch
) -> None:
    body = collection(SYSTEMS, [f"{SYSTEMS}/2"])
    result = await run(body, fetch, {"only": ""})
    assert result == resources[f"{SYSTEMS}/2"]
    assert result is not resources[f"{SYSTEMS}/2"]


@pytest.mark.parametrize("members", [[], [f"{SYSTEMS}/1", f"{SYSTEMS}/2"]])
async def test_only_without_exactly_one_member_returns_the_collection(
    fetch: FakeFetch, members: list[str]
) -> None:
    body = collection(SYSTEMS, members)
    assert await run(body, fetch, {"only": ""}) == body
    assert fetch.calls == []


async def test_only_with_a_vanished_member_returns_the_collection(
    fetch: FakeFetch,
) -> None:
    body = collection(SYSTEMS, [f"{SYSTEMS}/9"])
    assert await run(body, fetch, {"only": ""}) == body


async def test_only_on_a_resource_is_ignored(
    resources: dict[str, dict[str, Any]], fetch: FakeFetch
) -> None:
    body = resources[CHASSIS]
    assert await run(body, fetch, {"only": ""}) == body
    assert fetch.calls == []


# --- apply_query: $filter ------------------------------------------------------


async def test_filter_keeps_matching_members_as_links(
    resources: dict[str, dict[str, Any]], fetch: FakeFetch
) -> None:
    result = await run(resources[SYSTEMS], fetch, {"$filter": "PowerState eq 'On'"})
    assert result["Members"] == [link(f"{SYSTEMS}/1"), link(f"{SYSTEMS}/3")]
    assert result["Members@odata.count"] == 2
    assert "Members@odata.nextLink" not in result
    assert resources[SYSTEMS]["Members@odata.count"] == 3


async def test_filter_on_nested_property_and_numbers(
    resources: dict[str, dict[str, Any]], fetch: FakeFetch
) -> None:
    params = {"$filter": "ProcessorSummary/Count ge 4 and Status/Health eq 'OK'"}
    result = await run(resources[SYSTEMS], fetch, params)
    assert result["Members"] == [link(f"{SYSTEMS}/2"), link(f"{SYSTEMS}/3")]


async def test_filter_matching_nothing(
    resources: dict[str, dict[str, Any]], fetch: FakeFetch
) -> None:
    result = await run(resources[SYSTEMS], fetch, {"$filter": "Name eq 'none'"})
    assert result["Members"] == []
    assert result["Members@odata.count"] == 0


async def test_filter_drops_members_that_cannot_be_fetched(
    resources: dict[str, dict[str, Any]], fetch: FakeFetch
) -> None:
    body = collection(SYSTEMS, [f"{SYSTEMS}/1", f"{SYSTEMS}/9"])
    result = await run(body, fetch, {"$filter": "Missing ne 'x'"})
    assert result["Members"] == [link(f"{SYSTEMS}/1")]


async def test_filter_matches_inline_members_without_fetching(
    fetch: FakeFetch,
) -> None:
    body = collection("/redfish/v1/Things", [])
    body["Members"] = [
        {"@odata.id": "/redfish/v1/Things/a", "Size": 1},
        {"@odata.id": "/redfish/v1/Things/b", "Size": 2},
    ]
    result = await run(body, fetch, {"$filter": "Size gt 1"})
    assert result["Members"] == [body["Members"][1]]
    assert fetch.calls == []


@pytest.mark.parametrize(
    "params", [{"$filter": "Name eq 'x'"}, {"$top": "1"}, {"$skip": "1"}]
)
async def test_collection_options_on_a_resource_are_400(
    resources: dict[str, dict[str, Any]], fetch: FakeFetch, params: dict[str, str]
) -> None:
    with error(400, "QueryNotSupportedOnResource"):
        await run(resources[CHASSIS], fetch, params)


# --- apply_query: $top, $skip, paging ------------------------------------------


def numbered(count: int) -> dict[str, Any]:
    return collection(SYSTEMS, [f"{SYSTEMS}/{n}" for n in range(count)])


def member_ids(result: dict[str, Any]) -> list[int]:
    return [int(m["@odata.id"].rsplit("/", 1)[1]) for m in result["Members"]]


async def test_top_and_skip_slice_members(fetch: FakeFetch) -> None:
    result = await run(numbered(10), fetch, {"$skip": "2", "$top": "3"})
    assert member_ids(result) == [2, 3, 4]
    assert result["Members@odata.count"] == 10
    assert result["Members@odata.nextLink"] == f"{SYSTEMS}?$skip=5&$top=3"
    assert fetch.calls == []


async def test_last_page_has_no_next_link(fetch: FakeFetch) -> None:
    result = await run(numbered(10), fetch, {"$skip": "7", "$top": "3"})
    assert member_ids(result) == [7, 8, 9]
    assert "Members@odata.nextLink" not in result


async def test_skip_alone(fetch: FakeFetch) -> None:
    result = await run(numbered(5), fetch, {"$skip": "3"})
    assert member_ids(result) == [3, 4]
    assert result["Members@odata.count"] == 5
    assert "Members@odata.nextLink" not in result


@pytest.mark.parametrize("skip", ["5", "50"])
async def test_skip_past_the_end_is_empty(fetch: FakeFetch, skip: str) -> None:
    result = await run(numbered(5), fetch, {"$skip": skip})
    assert result["Members"] == []
    assert result["Members@odata.count"] == 5


async def test_top_larger_than_collection(fetch: FakeFetch) -> None:
    result = await run(numbered(3), fetch, {"$top": "10"})
    assert member_ids(result) == [0, 1, 2]
    assert "Members@odata.nextLink" not in result


async def test_top_zero_returns_no_members_and_no_next_link(
    fetch: FakeFetch,
) -> None:
    result = await run(numbered(3), fetch, {"$top": "0"})
    assert result["Members"] == []
    assert result["Members@odata.count"] == 3
    assert "Members@odata.nextLink" not in result


async def test_server_side_paging(fetch: FakeFetch) -> None:
    body = numbered(7)
    first = await run(body, fetch, {}, page_size=3)
    assert member_ids(first) == [0, 1, 2]
    assert first["Members@odata.count"] == 7
    assert first["Members@odata.nextLink"] == f"{SYSTEMS}?$skip=3"

    second = await run(body, fetch, next_params(first["Members@odata.nextLink"]), 3)
    assert member_ids(second) == [3, 4, 5]
    third = await run(body, fetch, next_params(second["Members@odata.nextLink"]), 3)
    assert member_ids(third) == [6]
    assert "Members@odata.nextLink" not in third


async def test_client_top_overrides_page_size(fetch: FakeFetch) -> None:
    result = await run(numbered(10), fetch, {"$top": "5"}, page_size=2)
    assert member_ids(result) == [0, 1, 2, 3, 4]
    assert result["Members@odata.nextLink"] == f"{SYSTEMS}?$skip=5&$top=5"


async def test_page_size_does_not_apply_to_resources(
    resources: dict[str, dict[str, Any]], fetch: FakeFetch
) -> None:
    body = resources[CHASSIS]
    assert await run(body, fetch, {}, page_size=1) == body


async def test_page_size_must_be_positive(fetch: FakeFetch) -> None:
    with pytest.raises(ValueError, match="page_size"):
        await run(numbered(3), fetch, {}, page_size=0)


async def test_filter_then_page_with_next_link_keeping_the_filter(
    resources: dict[str, dict[str, Any]], fetch: FakeFetch
) -> None:
    for number in range(4, 10):
        resources[f"{SYSTEMS}/{number}"] = system(number)
    body = numbered(10)
    params = {"$filter": "PowerState eq 'On'", "$top": "2"}

    result = await run(body, fetch, params)
    assert member_ids(result) == [1, 3]
    assert result["Members@odata.count"] == 5
    next_link = result["Members@odata.nextLink"]
    assert next_link == f"{SYSTEMS}?$skip=2&$top=2&$filter=PowerState%20eq%20%27On%27"
    assert next_params(next_link) == {**params, "$skip": "2"}

    second = await run(body, fetch, next_params(next_link))
    assert member_ids(second) == [5, 7]
    third = await run(body, fetch, next_params(second["Members@odata.nextLink"]))
    assert member_ids(third) == [9]
    assert "Members@odata.nextLink" not in third


async def test_next_link_keeps_expand_and_select(
    resources: dict[str, dict[str, Any]], fetch: FakeFetch
) -> None:
    body = collection(SYSTEMS, [f"{SYSTEMS}/{n}" for n in (1, 2, 3)])
    params = {"$top": "1", "$expand": ".($levels=1)", "$select": "Members/Name"}
    result = await run(body, fetch, params)
    next_link = result["Members@odata.nextLink"]
    assert next_link.startswith(f"{SYSTEMS}?$skip=1&$top=1&")
    assert next_params(next_link) == {**params, "$skip": "1", "$expand": "."}


async def test_next_link_drops_a_query_in_the_odata_id(fetch: FakeFetch) -> None:
    body = numbered(3)
    body["@odata.id"] = f"{SYSTEMS}?foo=1"
    result = await run(body, fetch, {"$top": "1"})
    assert result["Members@odata.nextLink"] == f"{SYSTEMS}?$skip=1&$top=1"


# --- apply_query: $expand ------------------------------------------------------


async def test_expand_dot_expands_members_and_other_links_but_not_links(
    resources: dict[str, dict[str, Any]], fetch: FakeFetch
) -> None:
    result = await run(resources[f"{SYSTEMS}/1"], fetch, {"$expand": "."})
    assert result["Bios"] == resources[f"{SYSTEMS}/1/Bios"]
    assert result["Links"] == {"Chassis": [link(CHASSIS)], "ManagedBy": [link(MANAGER)]}
    assert fetch.calls == [f"{SYSTEMS}/1/Bios"]

    members = await run(resources[SYSTEMS], fetch, {"$expand": "."})
    assert members["Members"] == [resources[f"{SYSTEMS}/{n}"] for n in (1, 2, 3)]
    assert members["Members@odata.count"] == 3


async def test_expand_tilde_expands_only_links(
    resources: dict[str, dict[str, Any]], fetch: FakeFetch
) -> None:
    result = await run(resources[f"{SYSTEMS}/1"], fetch, {"$expand": "~"})
    assert result["Bios"] == link(f"{SYSTEMS}/1/Bios")
    assert result["Links"]["Chassis"] == [resources[CHASSIS]]
    assert result["Links"]["ManagedBy"] == [resources[MANAGER]]

    members = await run(resources[SYSTEMS], fetch, {"$expand": "~"})
    assert members == resources[SYSTEMS]


async def test_expand_star_expands_both(
    resources: dict[str, dict[str, Any]], fetch: FakeFetch
) -> None:
    result = await run(resources[f"{SYSTEMS}/1"], fetch, {"$expand": "*"})
    assert result["Bios"] == resources[f"{SYSTEMS}/1/Bios"]
    assert result["Links"]["Chassis"] == [resources[CHASSIS]]


async def test_expand_leaves_annotations_and_own_id(
    resources: dict[str, dict[str, Any]], fetch: FakeFetch
) -> None:
    result = await run(resources[f"{SYSTEMS}/1"], fetch, {"$expand": "*"})
    assert result["@odata.id"] == f"{SYSTEMS}/1"
    assert result["@Redfish.Settings"] == {
        "SettingsObject": link(f"{SYSTEMS}/1/Settings")
    }
    assert f"{SYSTEMS}/1/Settings" not in fetch.calls


async def test_expand_levels_recurse(
    resources: dict[str, dict[str, Any]], fetch: FakeFetch
) -> None:
    one = await run(resources[SYSTEMS], fetch, {"$expand": "*"})
    assert one["Members"][0]["Links"]["Chassis"] == [link(CHASSIS)]

    two = await run(resources[SYSTEMS], fetch, {"$expand": "*($levels=2)"})
    first = two["Members"][0]
    assert first["Bios"] == resources[f"{SYSTEMS}/1/Bios"]
    assert first["Links"]["Chassis"][0]["Name"] == "Chassis"
    # level 3 is not reached: the chassis keeps its links
    assert first["Links"]["Chassis"][0]["Links"]["ManagedBy"] == [link(MANAGER)]

    three = await run(resources[SYSTEMS], fetch, {"$expand": "*($levels=3)"})
    chassis = three["Members"][0]["Links"]["Chassis"][0]
    assert chassis["Links"]["ManagedBy"] == [resources[MANAGER]]


async def test_expand_loop_guard(
    resources: dict[str, dict[str, Any]], fetch: FakeFetch
) -> None:
    result = await run(resources[f"{SYSTEMS}/1"], fetch, {"$expand": "~($levels=3)"})
    chassis = result["Links"]["Chassis"][0]

    # the chassis links back to the system being expanded: left as a link
    systems = chassis["Links"]["ComputerSystems"]
    assert systems[0] == link(f"{SYSTEMS}/1")
    # its siblings are not on the path, so they expand
    assert systems[1]["Id"] == "2"
    # but not back into the chassis, which encloses them
    assert systems[1]["Links"]["Chassis"] == [link(CHASSIS)]
    # the manager reached from the chassis does not expand the chassis again
    manager = chassis["Links"]["ManagedBy"][0]
    assert manager["Links"]["ManagerForChassis"] == [link(CHASSIS)]


async def test_expand_never_expands_a_parent(fetch: FakeFetch) -> None:
    resources = fetch.resources
    resources[f"{SYSTEMS}/1/Bios"]["Links"] = {
        "System": link(f"{SYSTEMS}/1/"),
        "Collection": link(SYSTEMS),
        "Root": link("/redfish/v1"),
        "Self": link(f"{SYSTEMS}/1/Bios?x=1"),
    }
    result = await run(resources[f"{SYSTEMS}/1/Bios"], fetch, {"$expand": "*"})
    assert result == resources[f"{SYSTEMS}/1/Bios"]
    assert fetch.calls == []


async def test_expand_leaves_unknown_and_fragment_links(
    resources: dict[str, dict[str, Any]], fetch: FakeFetch
) -> None:
    body = {
        "@odata.id": "/redfish/v1/Chassis/2",
        "Gone": link("/redfish/v1/Nowhere"),
        "Sensor": link(f"{CHASSIS}#/Sensors/0"),
        "Array": [link("/redfish/v1/Nowhere"), link(MANAGER), 5, "text"],
        "Mixed": {"@odata.id": MANAGER, "Name": "not a link"},
        "Text": MANAGER,
    }
    result = await run(body, fetch, {"$expand": "."})
    assert result["Gone"] == link("/redfish/v1/Nowhere")
    assert result["Sensor"] == link(f"{CHASSIS}#/Sensors/0")
    assert result["Array"] == [
        link("/redfish/v1/Nowhere"),
        resources[MANAGER],
        5,
        "text",
    ]
    assert result["Mixed"] == body["Mixed"]
    assert result["Text"] == MANAGER
    assert f"{CHASSIS}#/Sensors/0" not in fetch.calls


async def test_expand_is_bounded(
    fetch: FakeFetch, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(query, "MAX_EXPANDED", 2)
    for number in range(4, 6):
        fetch.resources[f"{SYSTEMS}/{number}"] = system(number)
    body = collection(SYSTEMS, [f"{SYSTEMS}/{n}" for n in range(1, 6)])

    result = await run(body, fetch, {"$expand": "."})
    assert [len(m) > 1 for m in result["Members"]] == [True, True, False, False, False]
    assert result["Members"][2] == link(f"{SYSTEMS}/3")
    assert len(fetch.calls) == 2
    assert "stopped at 2 links" in caplog.text


async def test_expand_fetches_each_uri_once(
    resources: dict[str, dict[str, Any]], fetch: FakeFetch
) -> None:
    params = {"$filter": "Id ne '2'", "$expand": "*($levels=2)"}
    result = await run(resources[SYSTEMS], fetch, params)
    assert [m["Id"] for m in result["Members"]] == ["1", "3"]
    assert len(fetch.calls) == len(set(fetch.calls))
    assert fetch.calls.count(CHASSIS) == 1


async def test_expand_after_paging_only_expands_the_page(
    resources: dict[str, dict[str, Any]], fetch: FakeFetch
) -> None:
    result = await run(resources[SYSTEMS], fetch, {"$skip": "1", "$expand": "."})
    assert [m["Id"] for m in result["Members"]] == ["2", "3"]
    assert f"{SYSTEMS}/1" not in fetch.calls


# --- apply_query: $select ------------------------------------------------------


async def test_select_properties(
    resources: dict[str, dict[str, Any]], fetch: FakeFetch
) -> None:
    params = {"$select": "Name,Status/Health,Unknown,Bios/Nothing,Id/Deeper"}
    result = await run(resources[f"{SYSTEMS}/1"], fetch, params)
    assert result == {
        "@odata.id": f"{SYSTEMS}/1",
        "@odata.type": "#ComputerSystem.v1_22_0.ComputerSystem",
        "@odata.etag": 'W/"1"',
        "Name": "System 1",
        "Status": {"Health": "OK"},
        "Bios": link(f"{SYSTEMS}/1/Bios"),
    }


async def test_select_whole_object_wins_over_a_path(
    resources: dict[str, dict[str, Any]], fetch: FakeFetch
) -> None:
    for value in ("Status,Status/Health", "Status/Health,Status"):
        result = await run(resources[f"{SYSTEMS}/1"], fetch, {"$select": value})
        assert result["Status"] == {"State": "Enabled", "Health": "OK"}


async def test_select_missing_nested_property_drops_the_parent(
    resources: dict[str, dict[str, Any]], fetch: FakeFetch
) -> None:
    result = await run(resources[f"{SYSTEMS}/1"], fetch, {"$select": "Status/Foo"})
    assert "Status" not in result


async def test_select_annotations_by_name(
    resources: dict[str, dict[str, Any]], fetch: FakeFetch
) -> None:
    params = {"$select": "@Redfish.Settings"}
    result = await run(resources[f"{SYSTEMS}/1"], fetch, params)
    assert set(result) == {
        "@odata.id",
        "@odata.type",
        "@odata.etag",
        "@Redfish.Settings",
    }


async def test_select_on_collection_keeps_member_annotations_with_members(
    resources: dict[str, dict[str, Any]], fetch: FakeFetch
) -> None:
    name_only = await run(resources[SYSTEMS], fetch, {"$select": "Name"})
    assert "Members@odata.count" not in name_only
    assert "Members" not in name_only

    params = {"$select": "Members", "$top": "1"}
    members = await run(resources[SYSTEMS], fetch, params)
    assert set(members) == {
        "@odata.id",
        "@odata.type",
        "Members",
        "Members@odata.count",
        "Members@odata.nextLink",
    }


async def test_select_applies_to_expanded_members(
    resources: dict[str, dict[str, Any]], fetch: FakeFetch
) -> None:
    params = {"$expand": ".", "$select": "Members/Name,Members/Status/State"}
    result = await run(resources[SYSTEMS], fetch, params)
    assert result["Members@odata.count"] == 3
    assert result["Members"][0] == {
        "@odata.id": f"{SYSTEMS}/1",
        "@odata.type": "#ComputerSystem.v1_22_0.ComputerSystem",
        "@odata.etag": 'W/"1"',
        "Name": "System 1",
        "Status": {"State": "Enabled"},
    }


async def test_select_of_member_properties_without_expand_keeps_links(
    resources: dict[str, dict[str, Any]], fetch: FakeFetch
) -> None:
    result = await run(resources[SYSTEMS], fetch, {"$select": "Members/Name"})
    assert result["Members"] == [link(f"{SYSTEMS}/{n}") for n in (1, 2, 3)]


async def test_select_on_empty_collection_keeps_empty_members(
    fetch: FakeFetch,
) -> None:
    result = await run(collection(SYSTEMS, []), fetch, {"$select": "Members/Name"})
    assert result["Members"] == []
    assert result["Members@odata.count"] == 0


async def test_select_into_expanded_links(
    resources: dict[str, dict[str, Any]], fetch: FakeFetch
) -> None:
    params = {"$expand": "~", "$select": "Links/Chassis/Name"}
    result = await run(resources[f"{SYSTEMS}/1"], fetch, params)
    assert result["Links"] == {
        "Chassis": [
            {
                "@odata.id": CHASSIS,
                "@odata.type": "#Chassis.v1_25_0.Chassis",
                "Name": "Chassis",
            }
        ]
    }


async def test_select_keeps_array_positions(fetch: FakeFetch) -> None:
    body = {
        "@odata.id": "/redfish/v1/Chassis/1/Thermal",
        "Fans": [{"Name": "a", "Reading": 1}, {"Reading": 2}, {"Name": "c"}],
        "Numbers": [1, 2],
    }
    result = await run(body, fetch, {"$select": "Fans/Name,Numbers/Deeper"})
    assert result == {
        "@odata.id": "/redfish/v1/Chassis/1/Thermal",
        "Fans": [{"Name": "a"}, {}, {"Name": "c"}],
    }


# --- combinations and purity ---------------------------------------------------


async def test_all_options_together(
    resources: dict[str, dict[str, Any]], fetch: FakeFetch
) -> None:
    params = {
        "$filter": "not (PowerState eq 'Off')",
        "$skip": "1",
        "$top": "1",
        "$expand": ".",
        "$select": "Members/Id",
    }
    result = await run(resources[SYSTEMS], fetch, params)
    assert result == {
        "@odata.id": SYSTEMS,
        "@odata.type": "#ComputerSystemCollection.ComputerSystemCollection",
        "Members": [
            {
                "@odata.id": f"{SYSTEMS}/3",
                "@odata.type": "#ComputerSystem.v1_22_0.ComputerSystem",
                "@odata.etag": 'W/"3"',
                "Id": "3",
            }
        ],
        "Members@odata.count": 2,
    }


async def test_neither_input_nor_fetched_bodies_are_changed(
    resources: dict[str, dict[str, Any]], fetch: FakeFetch
) -> None:
    before = copy.deepcopy(resources)
    params = {"$expand": "*($levels=3)", "$select": "Members/Links/Chassis/Name"}
    result = await run(resources[SYSTEMS], fetch, params)

    # mutate everything in the result: nothing may reach the fetched bodies
    def scribble(value: Any) -> None:
        if isinstance(value, dict):
            for item in value.values():
                scribble(item)
            value["scribbled"] = True
        elif isinstance(value, list):
            for item in value:
                scribble(item)
            value.append("scribbled")

    scribble(result)
    assert resources == before


async def test_only_result_is_a_copy(
    resources: dict[str, dict[str, Any]], fetch: FakeFetch
) -> None:
    before = copy.deepcopy(resources)
    result = await run(collection(SYSTEMS, [f"{SYSTEMS}/1"]), fetch, {"only": ""})
    result["Status"]["Health"] = "Critical"
    assert resources == before


# --- the standard's data -------------------------------------------------------


def test_supported_features_match_what_parse_accepts() -> None:
    expand = SUPPORTED_FEATURES["ExpandQuery"]
    assert expand["MaxLevels"] == MAX_EXPAND_LEVELS
    assert all(expand[k] for k in ("ExpandAll", "Levels", "Links", "NoLinks"))
    assert SUPPORTED_FEATURES["ExcerptQuery"] is False
    with error(501, "QueryParameterUnsupported", "$excerpt"):
        parse_query({"$excerpt": ""})


@pytest.mark.shared
def test_supported_features_follow_the_service_root_schema() -> None:
    schema_file = SHARED / "json-schema" / "ServiceRoot.v1_20_0.json"
    if not schema_file.exists():
        pytest.skip("no ../shared/redfish")
    definitions = json.loads(schema_file.read_text())["definitions"]

    def check(value: dict[str, Any], definition: str) -> None:
        properties = definitions[definition]["properties"]
        for key, item in value.items():
            assert key in properties, key
            if isinstance(item, dict):
                check(item, properties[key]["$ref"].rsplit("/", 1)[1])
            else:
                assert properties[key]["type"] in ("boolean", "integer")

    check(SUPPORTED_FEATURES, "ProtocolFeaturesSupported")


@pytest.mark.shared
@pytest.mark.parametrize(
    "params",
    [
        {"$nope": ""},
        {"only": "1"},
        {"only": "", "$top": "1"},
        {"$top": "x"},
        {"$top": "-1"},
        {"$expand": "?"},
        {"$expand": ".($levels=9)"},
        {"$select": ""},
        {"$filter": "("},
        {"$filter": "1"},
    ],
)
def test_errors_are_base_messages_with_their_arguments(params: dict[str, str]) -> None:
    registry_file = SHARED / "registries" / "Base.1.22.1.json"
    if not registry_file.exists():
        pytest.skip("no ../shared/redfish")
    messages = json.loads(registry_file.read_text())["Messages"]

    with pytest.raises(RedfishError) as info:
        parse_query(params)
    for message in info.value.messages:
        assert message.registry == "Base"
        assert len(message.args) == messages[message.key]["NumberOfArgs"]


async def test_not_supported_on_resource_is_a_base_message() -> None:
    with pytest.raises(RedfishError) as info:
        await apply_query({"@odata.id": "/x"}, QueryOptions(top=1), FakeFetch({}))
    assert info.value.messages[0].key == "QueryNotSupportedOnResource"
