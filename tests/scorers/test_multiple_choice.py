"""MultipleChoice and extract_choice: how an option letter is read from free text."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pickllm.errors import ConfigError
from pickllm.scorers import MissingReferenceError, MultipleChoice, extract_choice

QUESTION = (
    "George wants to warm his hands quickly by rubbing them. Which skin surface will produce "
    "the most heat?\nA) dry palms\nB) wet palms\nC) palms covered with oil\n"
    "D) palms covered with lotion\nAnswer:"
)


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        # 1. answer statements, the last one wins
        ("The answer is (B).", "B"),
        ("Answer: b", "B"),
        ("ANSWER - D", "D"),
        ("Final answer = (c)", "C"),
        ("The correct answer is: **D) palms covered with lotion**", "D"),
        ("The answer to this question would be option c.", "C"),
        ("Answer:\nB", "B"),
        ("I choose B because friction is higher.", "B"),
        ("I'd go with C.", "C"),
        ("My choice is d", "D"),
        ("B is correct.", "B"),
        ("(C) is the right answer", "C"),
        ("A is tempting, but the final answer is D.", "D"),
        ("The answer is A. Wait, no: the answer is C.", "C"),
        ("B is wrong. The answer is C", "C"),
        ("A good question. Answer: D", "D"),
        ("the answer is a bit unclear, maybe C", "C"),  # "a bit": an article, not option A
        # 2. a lone letter on the first line
        ("B", "B"),
        ("b", "B"),
        ("B.", "B"),
        ("(B)", "B"),
        ("**C**", "C"),
        ("'D'", "D"),
        ("  \n A \n", "A"),
        ("B\n\nExplanation: A) dry palms make less heat.", "B"),
        # 3. a leading letter with a delimiter
        ("B) wet palms", "B"),
        ("C. because oil reduces friction", "C"),
        ("**D**: lotion", "D"),
        ("a: dry palms", "A"),
        # 4. option markers, exactly one letter
        ("I think (C) fits best.", "C"),
        ("Probably option D, given the lotion.", "D"),
        ("Rubbing [B] produces heat", "B"),
        ("My pick: **A**", "A"),
        # 5. bare capital letters, exactly one
        ("Dry palms rub hardest, so A here.", "A"),
        ("It is A.", "A"),
        ("Hmm, C", "C"),
    ],
)
def test_extract_choice_reads_the_chosen_letter(response: str, expected: str) -> None:
    assert extract_choice(response) == expected


@pytest.mark.parametrize(
    "response",
    [
        "",
        "   ",
        "I am not sure.",
        "A magnet sticks because it is iron.",  # "A" is the article
        "I think so.",  # "I" is not among the options anyway
        "A) dry palms\nB) wet palms\nC) palms covered with oil",  # echoes the options
        "A) dry palms  B) wet palms",
        "Either (A) or (C).",  # several markers
        "Between A and C, hard to say.",  # several bare letters
        "E",  # not among the choices
        "The answer is E.",
        "Answers vary.",
    ],
)
def test_extract_choice_returns_none_without_one_clear_choice(response: str) -> None:
    assert extract_choice(response) is None


def test_option_text_from_the_prompt() -> None:
    assert extract_choice("wet palms", prompt=QUESTION) == "B"
    assert extract_choice("Palms covered with oil.", prompt=QUESTION) == "C"
    # "palms" alone is part of every option but is none of them
    assert extract_choice("palms", prompt=QUESTION) is None
    assert extract_choice("wet palms", prompt=None) is None


def test_option_text_uses_the_last_listing_of_a_few_shot_prompt() -> None:
    few_shot = "Q1\nA) ice\nB) fire\nAnswer: B\n\n" + QUESTION
    assert extract_choice("fire", prompt=few_shot) is None
    assert extract_choice("dry palms", prompt=few_shot) == "A"


def test_letters_take_precedence_over_option_text() -> None:
    assert extract_choice("The answer is A, not wet palms", prompt=QUESTION) == "A"


@pytest.mark.parametrize(
    ("choices", "response", "expected"),
    [
        ("AB", "Answer: B", "B"),
        ("AB", "The answer is C", None),
        ("ABCDE", "The answer is E", "E"),
        ("1234", "Option 2", "2"),
        ("1234", "The answer is 3.", "3"),
        (["a", "b"], "b)", "B"),
    ],
)
def test_custom_choices(choices: str | list[str], response: str, expected: str | None) -> None:
    assert extract_choice(response, choices) == expected


@pytest.mark.parametrize("choices", ["", "AA", ["AB"], "A-", "É"])
def test_invalid_choices_are_rejected(choices: str | list[str]) -> None:
    with pytest.raises(ConfigError, match="choices"):
        MultipleChoice(choices)


@pytest.mark.parametrize(
    ("response", "reference", "expected"),
    [
        ("The answer is (B)", "B", 1.0),
        ("The answer is (B)", "b", 1.0),
        ("The answer is (B)", "(B)", 1.0),
        ("The answer is (B)", "Answer: B", 1.0),
        ("The answer is (B)", "A", 0.0),
        ("wet palms", "B", 1.0),
        ("no idea", "B", 0.0),
        ("A) dry palms\nB) wet palms", "B", 0.0),
    ],
)
def test_multiple_choice_score(response: str, reference: str, expected: float) -> None:
    assert MultipleChoice().score(QUESTION, response, reference) == expected


def test_prompt_options_can_be_turned_off() -> None:
    scorer = MultipleChoice(use_prompt_options=False)
    assert scorer.score(QUESTION, "wet palms", "B") == 0.0
    assert scorer.extract("(B)") == "B"
    assert repr(scorer) == "MultipleChoice(choices='ABCD', use_prompt_options=False)"


@pytest.mark.parametrize("reference", [None, "none of these", "E", ""])
def test_unreadable_reference_is_an_error(reference: str | None) -> None:
    with pytest.raises(MissingReferenceError, match="MultipleChoice"):
        MultipleChoice().score(QUESTION, "B", reference)


@given(st.text(), st.one_of(st.none(), st.text()))
def test_extract_choice_never_raises_and_returns_a_choice_or_none(
    response: str, prompt: str | None
) -> None:
    assert extract_choice(response, "ABCD", prompt=prompt) in (None, "A", "B", "C", "D")


@given(st.sampled_from("ABCD"), st.sampled_from(["{}", "({})", "**{}**", "Answer: {}", "{})"]))
def test_decorated_letters_are_read(letter: str, template: str) -> None:
    assert extract_choice(template.format(letter)) == letter
    assert MultipleChoice().score("q", template.format(letter), letter) == 1.0
