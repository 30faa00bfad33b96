"""The fast LALR driver (rules_dsl.lalr_driver) against Lark's own parser.

``parse_text`` runs the fast driver and falls back to Lark on a syntax error.
Here both run on the same text and must give the same AST *with the same
spans* (spans take no part in AST equality, so the trees are compared through
``_shape``, which includes every field), the same comments and the same
diagnostics; on text with a syntax error the driver must stop (``None``) so
that Lark's diagnostic is the one reported.
"""

from __future__ import annotations

import dataclasses
import random
from pathlib import Path
from typing import Any

import pytest
from gen_programs import generate_contract, generate_ruleset, valid_programs
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from strategies import PATH, source_files

from rules_dsl import fmt
from rules_dsl.parse import ParsedText, decode_source, parse_text, parse_text_fast, parse_text_lark

REPO = Path(__file__).resolve().parents[2]
JRULE_FILES = sorted(
    [*REPO.glob("examples/*.jrule"), *REPO.glob("contracts_lib/modules/*.jrule"),
     *REPO.glob("tests/fixtures/**/*.jrule")]
)


def _shape(value: Any) -> Any:
    """Everything a value holds, spans and exact types included."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return (type(value).__name__,
                tuple((f.name, _shape(getattr(value, f.name))) for f in dataclasses.fields(value)))
    if isinstance(value, (tuple, list)):
        return (type(value).__name__, tuple(_shape(v) for v in value))
    return (type(value).__name__, value)


def _same(fast: ParsedText, reference: ParsedText) -> None:
    assert _shape(fast.source) == _shape(reference.source)
    assert _shape(fast.comments) == _shape(reference.comments)
    assert _shape(fast.diagnostics) == _shape(reference.diagnostics)


def assert_agrees(text: str, path: str = PATH) -> ParsedText | None:
    """The fast driver gives Lark's result, or stops exactly where Lark reports a
    syntax error; ``parse_text`` gives Lark's result either way."""
    reference = parse_text_lark(text, path)
    fast = parse_text_fast(text, path)
    if fast is None:
        # the driver only stops on syntax errors (E001), never on valid text
        assert reference.source is None
        assert [d.code for d in reference.diagnostics] == ["E001"]
    else:
        _same(fast, reference)
    _same(parse_text(text, path), reference)
    return fast


def test_there_are_files_to_compare() -> None:
    assert len(JRULE_FILES) >= 50


@pytest.mark.parametrize("path", JRULE_FILES, ids=lambda p: str(p.relative_to(REPO)))
def test_repository_files(path: Path) -> None:
    text, _problem = decode_source(path.read_bytes(), path.name)
    if text is None:
        pytest.skip("not text (E004)")
    fast = assert_agrees(text, path.name)
    if "/bad/" not in path.as_posix() or not path.name.startswith("E001"):
        assert fast is not None, "the driver stopped on a file without a syntax error"


def test_generated_rule_sets_and_their_spans() -> None:
    for seed in range(6):
        text = generate_ruleset(3, seed)
        fast = assert_agrees(text)
        assert fast is not None and fast.source is not None and fast.comments


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(valid_programs(max_contracts=2))
def test_random_valid_programs(text: str) -> None:
    assert assert_agrees(text) is not None


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(source_files)
def test_random_trees_printed_by_fmt(tree: Any) -> None:
    """Every construct of the AST strategies, laid out by the formatter."""
    assert assert_agrees(fmt.format_source(tree)) is not None


# --- text that is not valid: the driver stops where Lark does, or agrees with it ---

_WORDS = (
    "contract version module import role enum record term var state initial terminal event by "
    "on in when priority cite deadline before after every entering for day days working month "
    "months year years set do goto if else suspend resume restart approved within rejected "
    "timeout and or not true false x 申请人 Money List _ 1 1.5 ¥1.00 ¥1.005 2025-01-31 "
    "2025-02-30 2025-01-01T09:00:00+08:00 \"t\" \"\\u4e2d\" \"open #c\n"
).split(" ")
_PUNCT = [*"{}()[],:.=+-*/<>", "==", "!=", "<=", ">=", "\n", "\t", "¥", "'", "#"]
_PREFIX = 'contract c "t" version "1" {\n role r\n state a initial\n state b terminal\n'


@settings(max_examples=150, deadline=None)
@given(st.lists(st.sampled_from(_WORDS + _PUNCT), max_size=60), st.booleans())
def test_token_soup(tokens: list[str], inside: bool) -> None:
    body = " ".join(tokens)
    assert_agrees(_PREFIX + body + "\n}\n" if inside else body)


@settings(max_examples=80, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.integers(0, 2**32 - 1), st.data())
def test_mutated_contracts(seed: int, data: st.DataObject) -> None:
    """Cut, duplicated and swapped stretches of a valid contract."""
    text = generate_contract(0, seed)
    rng = random.Random(data.draw(st.integers(0, 2**32 - 1), label="rng"))
    for _ in range(rng.randint(1, 3)):
        i = rng.randrange(len(text))
        j = min(len(text), i + rng.randint(1, 40))
        op = rng.choice(["cut", "dup", "insert"])
        if op == "cut":
            text = text[:i] + text[j:]
        elif op == "dup":
            text = text[:j] + text[i:j] + text[j:]
        else:
            text = text[:i] + rng.choice(_WORDS + _PUNCT) + " " + text[i:]
    assert_agrees(text)


@pytest.mark.parametrize("text", [
    "",
    "   \n\t  ",
    "# only a comment",
    "# a comment\n# and another\n",
    'contract c "t" version "1" {}',
    'contract c "t" version "1" {}   # trailing',
    'contract c "t" version "1" { state in initial }',  # a keyword where a name may stand
    'contract c "t" version "1" { var x: Int = 1 + 2 * -3 }',
    'contract c "t" version "1" { var x: Int = ' + "(" * 70 + "1" + ")" * 70 + " }",  # E003
    'contract c "t" version "1" { var x: Money = ¥1.005 }',  # E002, the AST is kept
    'contract c "t" version "1" {',  # ends early
    "contract",
    "contract c 't'",
])
def test_edge_texts(text: str) -> None:
    assert_agrees(text)


def test_reductions_are_generated() -> None:
    """The generated reductions copy to_ast's adapter: if its code changes, they
    are switched off (and this fails) until they are checked against it again
    and ``ADAPTER_FINGERPRINT`` is updated.  Every rule whose Lark callback chain
    has a known shape gets a generated function, and the driver uses it."""
    from rules_dsl.lalr_driver import _Unit
    from rules_dsl.parse import _fast_parser, _parser
    from rules_dsl.reductions import (
        ADAPTER_FINGERPRINT,
        _chain,
        adapter_fingerprint,
        specialise,
    )

    assert adapter_fingerprint() == ADAPTER_FINGERPRINT
    lark_parser = _parser()
    callbacks = lark_parser.parser.parser.parser.callbacks
    transformer = lark_parser.options.transformer
    generated = specialise(callbacks, transformer, None)
    known = {rule for rule, cb in callbacks.items() if _chain(cb, transformer) is not None}
    assert known and set(generated) == known
    fast = _fast_parser()
    assert fast is not None
    used = {a[2].__code__.co_name for row in fast._actions.values() for a in row.values()
            if type(a) is tuple and hasattr(a[2], "__code__")
            and a[2].__code__.co_filename == "<jrule reductions>"}
    assert used == {f.__code__.co_name for f in generated.values()} - _units(generated)
    assert any(type(a) is _Unit for row in fast._actions.values() for a in row.values())


def _units(generated: dict[Any, Any]) -> set[str]:
    """Generated functions of unit rules, which the driver replaces by state look-ups."""
    from rules_dsl.parse import _parser

    callbacks = _parser().parser.parser.parser.callbacks
    from lark.parse_tree_builder import ExpandSingleChild

    return {f.__code__.co_name for rule, f in generated.items()
            if len(rule.expansion) == 1 and type(callbacks[rule]) is ExpandSingleChild}
