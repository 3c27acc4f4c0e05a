"""Tag and priority rules: every bad value gets a field-specific Problem, never an exception."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.checks import Problem, priority_problems, tag_problems


@pytest.mark.parametrize(
    ("tag", "code"),
    [
        ("", "tag_empty"),
        ("x" * 257, "tag_too_long"),
        ("has space", "tag_bad_characters"),
        ("quo'te", "tag_bad_characters"),
        ('dq"', "tag_bad_characters"),
        ("tab\there", "tag_bad_characters"),
        ("nul\x00", "tag_bad_characters"),
        ("zero\u200bwidth", "tag_bad_characters"),
    ],
)
def test_bad_tags(tag: str, code: str) -> None:
    (problem,) = tag_problems("dk_tag", "DataKeeper Resource Tag", tag)
    assert problem.field == "dk_tag" and problem.code == code
    assert problem.message.startswith("DataKeeper Resource Tag")


@pytest.mark.parametrize("tag", ["/data", "datarep-data", "x" * 256, "app_1.2:3"])
def test_good_tags(tag: str) -> None:
    assert tag_problems("root_tag", "Root Tag", tag) == []


@pytest.mark.parametrize(
    ("value", "code"),
    [
        (0, "priority_out_of_range"),
        (1000, "priority_out_of_range"),
        (-5, "priority_out_of_range"),
        ("abc", "priority_not_integer"),
        ("", "priority_empty"),
        ("2.5", "priority_not_integer"),
        (None, "priority_empty"),
    ],
)
def test_bad_priorities(value: object, code: str) -> None:
    number, problems = priority_problems("target_priority", "Target Priority", value)
    assert number is None
    assert [p.code for p in problems] == [code]
    assert "Target Priority" in problems[0].message


def test_good_priorities() -> None:
    assert priority_problems("p", "P", " 10 ") == (10, [])
    assert priority_problems("p", "P", 999) == (999, [])


@given(st.one_of(st.text(), st.integers(), st.floats(), st.none(), st.booleans()))
def test_checks_only_ever_return_problems(value: object) -> None:
    number, problems = priority_problems("target_priority", "Target Priority", value)
    assert all(isinstance(p, Problem) and p.field == "target_priority" for p in problems)
    assert (number is None) == bool(problems)
    for p in tag_problems("root_tag", "Root Tag", value):
        assert isinstance(p, Problem) and p.field == "root_tag"
