"""ExactMatch, TokenF1 and the normalization they share: SQuAD cases, edge cases, properties."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pickllm.scorers import (
    ExactMatch,
    MissingReferenceError,
    TokenF1,
    normalize_answer,
    normalized_tokens,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("The Eiffel Tower", "eiffel tower"),
        ("  an   apple\t\na day ", "apple day"),
        ("Hello, world!!!", "hello world"),
        ("“Curly” quotes — and dashes…", "curly quotes and dashes"),
        ("$5.00", "500"),  # SQuAD drops all ASCII punctuation, symbols included
        ("theater", "theater"),  # articles only as whole words
        ("Anna, THE end.", "anna end"),
        ("", ""),
        ("...", ""),
    ],
)
def test_normalize_answer(text: str, expected: str) -> None:
    assert normalize_answer(text) == expected


def test_normalized_tokens() -> None:
    assert normalized_tokens("The cat and the hat!") == ["cat", "and", "hat"]
    assert normalized_tokens("   ") == []


@pytest.mark.parametrize(
    ("response", "reference", "expected"),
    [
        ("Paris", "Paris", 1.0),
        ("paris.", "Paris", 1.0),
        ("The Beatles", "beatles", 1.0),
        ("  Marie   Curie ", "marie curie", 1.0),
        ("Paris, France", "Paris", 0.0),
        ("Lyon", "Paris", 0.0),
        ("", "", 1.0),
        ("", "Paris", 0.0),
        ("the", "", 1.0),  # both normalize to nothing
    ],
)
def test_exact_match(response: str, reference: str, expected: float) -> None:
    assert ExactMatch().score("q", response, reference) == expected


def test_exact_match_without_normalization_only_strips() -> None:
    strict = ExactMatch(normalize=False)
    assert strict.score("q", " Paris\n", "Paris") == 1.0
    assert strict.score("q", "paris", "Paris") == 0.0
    assert strict.score("q", "Paris.", "Paris") == 0.0
    assert repr(strict) == "ExactMatch(normalize=False)"


@pytest.mark.parametrize(
    ("response", "reference", "expected"),
    [
        ("Marie Curie", "Marie Curie", 1.0),
        ("Curie", "Marie Curie", 2 / 3),  # p=1, r=1/2
        ("Marie Skłodowska Curie", "Marie Curie", 0.8),  # p=2/3, r=1
        ("the cat sat on the mat", "a cat on a mat", 6 / 7),  # p=3/4, r=3/3
        ("cat cat cat", "cat", 0.5),  # multiplicity counts: p=1/3, r=1
        ("Einstein", "Marie Curie", 0.0),
        ("", "", 1.0),
        ("", "Curie", 0.0),
        ("Curie", "", 0.0),
        ("The.", "a", 1.0),  # both empty after normalization
    ],
)
def test_token_f1(response: str, reference: str, expected: float) -> None:
    assert TokenF1().score("q", response, reference) == pytest.approx(expected)


@pytest.mark.parametrize("scorer", [ExactMatch(), TokenF1()])
def test_reference_is_required(scorer: ExactMatch | TokenF1) -> None:
    with pytest.raises(MissingReferenceError, match=type(scorer).__name__):
        scorer.score("q", "answer")


@given(st.text(), st.text())
def test_token_f1_is_a_symmetric_score_in_unit_interval(a: str, b: str) -> None:
    forward = TokenF1().score("q", a, b)
    assert 0.0 <= forward <= 1.0
    assert forward == pytest.approx(TokenF1().score("q", b, a))


@given(st.text())
def test_a_text_matches_itself_fully(text: str) -> None:
    assert ExactMatch().score("q", text, text) == 1.0
    assert TokenF1().score("q", text, text) == 1.0


@given(st.text(), st.text())
def test_exact_match_implies_full_token_f1(a: str, b: str) -> None:
    if ExactMatch().score("q", a, b) == 1.0:
        assert TokenF1().score("q", a, b) == 1.0


@given(st.text())
def test_normalization_is_idempotent(text: str) -> None:
    once = normalize_answer(text)
    assert normalize_answer(once) == once
