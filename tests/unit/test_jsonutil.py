from __future__ import annotations

import orjson
import pytest

from jqs.jsonutil import InvalidJSON, check_numbers, check_storable, loads


def _nest(depth: int) -> object:
    value: object = {}
    for _ in range(depth - 1):
        value = {"a": value}
    return value


def test_depth_at_the_limit_passes_and_beyond_fails() -> None:
    check_storable(_nest(5), max_depth=5)
    with pytest.raises(InvalidJSON, match="deeper than the limit of 5"):
        check_storable(_nest(6), max_depth=5)
    with pytest.raises(InvalidJSON, match="deeper"):
        check_storable({"a": [[[[[1]]]]]}, max_depth=5)


@pytest.mark.parametrize("value", [{"a": "x\x00y"}, {"a\x00": 1}, {"a": ["\x00"]}])
def test_nul_is_refused(value: object) -> None:
    with pytest.raises(InvalidJSON, match="NUL"):
        check_storable(value, max_depth=10)


def test_raw_text_without_escaped_nul_skips_the_string_scan() -> None:
    # A NUL can only arrive as the escape; without it in the raw text, strings are fine.
    check_storable({"a": "plain"}, max_depth=10, raw=b'{"a": "plain"}')
    with pytest.raises(InvalidJSON):
        check_storable(loads(b'{"a": "\\u0000"}'), max_depth=10, raw=b'{"a": "\\u0000"}')


def test_raw_text_decides_depth_only_when_it_holds_few_brackets() -> None:
    # Brackets in strings, or many side by side, send the check to walk the value.
    check_storable({"a": "[[[[[[[[[[{{{{"}, max_depth=2, raw=b'{"a": "[[[[[[[[[[{{{{"}')
    siblings = {f"k{i}": [i] for i in range(10)}
    check_storable(siblings, max_depth=2, raw=orjson.dumps(siblings))
    deep = _nest(6)
    with pytest.raises(InvalidJSON, match="deeper"):
        check_storable(deep, max_depth=5, raw=orjson.dumps(deep))
    check_storable(deep, max_depth=6, raw=orjson.dumps(deep))


@pytest.mark.parametrize("text", [b"NaN", b'{"a": Infinity}', b'{"a": 1e400}', b'"\\ud800"', b"{"])
def test_loads_refuses_what_jsonb_cannot_hold(text: bytes) -> None:
    with pytest.raises(InvalidJSON):
        loads(text)


@pytest.mark.parametrize(
    "text",
    [
        b'{"a": 1e-16384}',
        b'{"a": 0.5e-16383}',
        b'{"a": [{"b": 1E-0020000}]}',
        b'{"a": 0.' + b"0" * 20_000 + b"1}",
    ],
)
def test_numbers_finer_than_numeric_holds_are_refused(text: bytes) -> None:
    # orjson reads them as 0.0; PostgreSQL's numeric refuses more than 16383 decimals.
    assert loads(text) is not None
    with pytest.raises(InvalidJSON, match="16383 digits after the decimal point"):
        check_numbers(text)


@pytest.mark.parametrize(
    "text",
    [
        b'{"a": 1e-16383}',
        b'{"a": 1.' + b"1" * 2000 + b"}",
        b'{"a": "1e-20000"}',  # only looks like one
        b'{"re-send": "e-mail", "n": -5e-3}',
    ],
)
def test_numbers_numeric_holds_pass(text: bytes) -> None:
    check_numbers(text)
