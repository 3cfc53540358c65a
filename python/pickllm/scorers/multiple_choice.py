"""Multiple-choice grading: read which option a free-text answer picked, compare to the key.

:func:`extract_choice` reads the option letter a model chose. Models rarely answer with the bare
letter asked for; they write "The answer is (B)", "**C**", "b) wet palms" or a paragraph that ends
in "Answer: D". The cues are tried from the most to the least explicit, and the first kind of
cue found decides:

1. **Answer statements**, the last one wins: "answer: B", "the (final / correct) answer is (B)",
   "answer to this question is option C", "I choose B", "my choice is D", "B is correct". A model
   that reasons first and concludes last, or corrects itself, means its last statement.
2. **A lone letter** on the first non-empty line, with any decoration: "B", "b", "(B)", "B.",
   "**C**", "'D'".
3. **A leading letter** with a delimiter: "B) wet palms", "C. because...", "**D**: ...", "a: ...",
   unless the response goes on to list other options ("A) dry palms B) wet palms").
4. **Option markers** anywhere: "(C)", "[C]", "**C**", "option C", "choice C", "C)", a line
   starting "C." or "C:". Exactly one distinct letter must be marked.
5. **Bare capital letters** standing alone ("I'd go with C here"). Exactly one distinct letter
   must appear. A capital "A" (or "I") that starts a sentence and is followed by a lower-case word
   ("A magnet sticks because ...") is read as the article (or pronoun), not as an option.
6. **Option text** (only with the prompt): if the prompt lists options as lines "A) dry palms",
   and the response names exactly one of their texts ("wet palms"), that option. With few-shot
   prompts, the last listing of each letter counts, i.e. the question being asked.

Several letters: within kind 1 the last statement wins; within kinds 4, 5 and 6, two or more
distinct candidates make the answer ambiguous and nothing is extracted (no guessing, so a response
that lists every option never scores). Lower-case letters count only where the context makes them
unambiguous (kinds 1-3 and parenthesized markers); "the answer is a bit unclear" does not pick A.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from pickllm.errors import ConfigError
from pickllm.scorers.base import require_reference
from pickllm.scorers.errors import MissingReferenceError
from pickllm.scorers.normalize import normalize_answer

__all__ = ["MultipleChoice", "extract_choice"]

# Decoration that may surround a chosen letter: brackets, markdown emphasis, quotes.
_OPEN = r"[\(\[\{*_\"'`]*\s*"
_NOT_ALNUM_AFTER = r"(?![A-Za-z0-9])"
_SENTENCE_START = re.compile(r"(?:^|[.!?:;\n])\s*[\"'*_(]*$")


@dataclass(frozen=True)
class _Patterns:
    """The compiled regular expressions for one set of choices."""

    statements: tuple[re.Pattern[str], ...]
    lone_line: re.Pattern[str]
    leading: re.Pattern[str]
    listing: tuple[re.Pattern[str], ...]
    markers: tuple[re.Pattern[str], ...]
    bare: re.Pattern[str]
    option_lines: re.Pattern[str]


def _compile(choices: str) -> _Patterns:
    upper = "[" + "".join(re.escape(c) for c in choices) + "]"
    lower = "[" + "".join(re.escape(c.lower()) for c in choices if c.isalpha()) + "]"
    any_case = f"(?:{upper}|{lower})" if lower != "[]" else upper
    letter = f"(?P<letter>{any_case}){_NOT_ALNUM_AFTER}"
    cap_letter = f"(?P<letter>{upper}){_NOT_ALNUM_AFTER}"
    verb = r"(?i:is|was|would\s+be|should\s+be|will\s+be|must\s+be)"
    noun = r"(?:(?i:option|choice|letter)\s*)?"
    statements = (
        # "Answer: B", "Final answer = (c)", "ANSWER - D"
        re.compile(rf"(?i:\banswer\b)\s*[:=\-]\s*{noun}{_OPEN}{letter}"),
        # "The correct answer is (B)", "the answer to this question would be option C"
        re.compile(rf"(?i:\banswer\b)[^.\n]{{0,60}}?\b{verb}\s*:?\s*{noun}{_OPEN}{letter}"),
        # "I choose B", "I'd go with C", "my choice is D", "I will pick option A"
        re.compile(
            rf"(?i:\bI(?:\s+would|\s+will|'d|'ll)?\s+(?:choose|pick|select|go\s+with)"
            rf"|\bmy\s+(?:choice|pick|selection)\s+is)\s*:?\s*{noun}{_OPEN}{letter}"
        ),
        # "B is correct", "(C) is the right answer"
        re.compile(
            rf"(?<![A-Za-z0-9]){_OPEN}{cap_letter}[\)\]*]*\s+"
            r"(?i:is\s+(?:the\s+)?(?:correct|right|best))"
        ),
    )
    lone_line = re.compile(rf"^[\s\(\[\{{*_\"'`]*{letter}[\s\)\]\}}*_\"'`.:,!]*$")
    leading = re.compile(rf"^{_OPEN}{letter}\s*(?:[\)\]\}}.:]|\*\*)")
    markers = (
        re.compile(rf"\(\s*{letter}\s*\)"),
        re.compile(rf"\[\s*{letter}\s*\]"),
        re.compile(rf"\*\*\s*{cap_letter}\s*\*\*"),
        re.compile(rf"(?i:\b(?:option|choice)\s+){cap_letter}"),
        re.compile(rf"(?m)^\s*{cap_letter}[\).:]"),
        re.compile(rf"(?<![A-Za-z0-9]){cap_letter}\)"),
    )
    # "A) ... B) ..." or lines starting "A." / "B.": the response lists options.
    listing = markers[-2:]
    # Not next to an apostrophe, straight or curly U+2019 ("A's", "I'm").
    bare = re.compile(rf"(?<![A-Za-z0-9'\u2019]){cap_letter}(?!['\u2019])")
    option_lines = re.compile(rf"(?m)^\s*\(?(?P<letter>{upper})[\).:]\s+(?P<text>\S.*?)\s*$")
    return _Patterns(statements, lone_line, leading, listing, markers, bare, option_lines)


_PATTERN_CACHE: dict[str, _Patterns] = {}


def _patterns(choices: str) -> _Patterns:
    cached = _PATTERN_CACHE.get(choices)
    if cached is None:
        cached = _PATTERN_CACHE[choices] = _compile(choices)
    return cached


def _check_choices(choices: str | Sequence[str]) -> str:
    letters = [str(c).strip().upper() for c in choices]
    if not letters:
        raise ConfigError("choices is empty: give the option labels, e.g. choices='ABCD'")
    for label in letters:
        if len(label) != 1 or not label.isascii() or not label.isalnum():
            raise ConfigError(
                f"choices contains {label!r}: each option label must be one ASCII letter or digit"
            )
    if len(set(letters)) != len(letters):
        raise ConfigError(f"choices {''.join(letters)!r} repeats a label")
    return "".join(letters)


def _is_article(text: str, start: int, end: int) -> bool:
    """Whether the capital at text[start:end] is "A" or "I" used as a word, not as an option."""
    if text[start:end] not in ("A", "I"):
        return False
    follows_word = re.match(r"[ \t]+[a-z]", text[end:]) is not None
    return follows_word and _SENTENCE_START.search(text[:start]) is not None


def _lowercase_article(match: re.Match[str], text: str) -> bool:
    """A lower-case letter followed by a word ("is a bit unclear") is an article, not a choice."""
    chosen = match.group("letter")
    return chosen.islower() and re.match(r"[ \t]+[A-Za-z]", text[match.end("letter") :]) is not None


def _unique(found: Iterable[str]) -> tuple[str | None, bool]:
    """(the letter, False) if exactly one distinct letter was found; (None, ambiguous?) else."""
    distinct = {f.upper() for f in found}
    if len(distinct) == 1:
        return distinct.pop(), False
    return None, len(distinct) > 1


def _option_texts(prompt: str, patterns: _Patterns) -> dict[str, str]:
    texts: dict[str, str] = {}
    for match in patterns.option_lines.finditer(prompt):
        # Later listings overwrite earlier ones: in a few-shot prompt the last block is the
        # question actually asked.
        texts[match.group("letter")] = normalize_answer(match.group("text"))
    return {letter: text for letter, text in texts.items() if text}


def extract_choice(
    response: str, choices: str | Sequence[str] = "ABCD", *, prompt: str | None = None
) -> str | None:
    """Return the upper-case option label ``response`` chose, or None if none can be read.

    The cues tried, in order, are listed in this module's documentation.

    >>> extract_choice("The answer is (B).")
    'B'
    >>> extract_choice("**C**")
    'C'
    >>> extract_choice("Answer: b")
    'B'
    >>> extract_choice("A is tempting, but the final answer is D.")
    'D'
    >>> extract_choice("A) dry palms  B) wet palms") is None  # lists both: ambiguous
    True
    >>> extract_choice("wet palms", prompt="Which?\\nA) dry palms\\nB) wet palms")
    'B'
    >>> extract_choice("Option 2", choices="123")
    '2'
    """
    labels = _check_choices(choices)
    patterns = _patterns(labels)
    text = response.strip()
    if not text:
        return None

    # 1. Answer statements: the last one wins.
    best: tuple[int, str] | None = None
    for pattern in patterns.statements:
        for match in pattern.finditer(text):
            if _lowercase_article(match, text):
                continue
            position = match.start("letter")
            if best is None or position > best[0]:
                best = (position, match.group("letter").upper())
    if best is not None:
        return best[1]

    # 2. A lone letter on the first non-empty line.
    first_line = text.splitlines()[0]
    lone = patterns.lone_line.match(first_line)
    if lone is not None:
        return lone.group("letter").upper()

    # 3. A leading letter with a delimiter, unless the response lists several options: then
    # "A) dry palms" at its start is the first item of an echoed list, not a choice.
    listed = {m.group("letter") for p in patterns.listing for m in p.finditer(text)}
    leading = patterns.leading.match(first_line)
    if leading is not None and len(listed) <= 1:
        return leading.group("letter").upper()

    # 4. Option markers: exactly one distinct letter.
    marked = [m.group("letter") for p in patterns.markers for m in p.finditer(text)]
    chosen, ambiguous = _unique(marked)
    if chosen is not None or ambiguous:
        return chosen

    # 5. Bare capital letters, minus "A" / "I" used as words.
    bare = [
        m.group("letter")
        for m in patterns.bare.finditer(text)
        if not _is_article(text, m.start("letter"), m.end("letter"))
    ]
    chosen, ambiguous = _unique(bare)
    if chosen is not None or ambiguous:
        return chosen

    # 6. The text of exactly one option listed in the prompt.
    if prompt is not None:
        normalized = f" {normalize_answer(text)} "
        named = [
            letter
            for letter, option in _option_texts(prompt, patterns).items()
            if f" {option} " in normalized
        ]
        chosen, _ = _unique(named)
        return chosen
    return None


class MultipleChoice:
    """1.0 when the option read from the response is the reference option, else 0.0.

    ``choices`` are the option labels (default ``"ABCD"``; ``"AB"``, ``"ABCDE"`` or ``"1234"``
    work too). The reference is a label ("B", "b", "(B)") or any text from which
    :func:`extract_choice` reads one ("Answer: B"). A response from which no option can be
    read, or that names several (see :func:`extract_choice`), scores 0.0. With
    ``use_prompt_options=True`` (the default) a response that only repeats one option's text
    counts as that option.

    >>> mc = MultipleChoice()
    >>> mc.score("Which is warmest?\\nA) ice\\nB) fire", "The answer is (B)", "B")
    1.0
    >>> mc.score("Which is warmest?\\nA) ice\\nB) fire", "fire", "B")
    1.0
    >>> mc.score("Which is warmest?\\nA) ice\\nB) fire", "I am not sure.", "B")
    0.0
    """

    __slots__ = ("choices", "use_prompt_options")

    def __init__(
        self, choices: str | Sequence[str] = "ABCD", *, use_prompt_options: bool = True
    ) -> None:
        self.choices = _check_choices(choices)
        self.use_prompt_options = use_prompt_options

    def __repr__(self) -> str:
        return (
            f"MultipleChoice(choices={self.choices!r}, "
            f"use_prompt_options={self.use_prompt_options})"
        )

    def extract(self, response: str, prompt: str | None = None) -> str | None:
        """The option label the response chose, or None (see :func:`extract_choice`)."""
        return extract_choice(
            response, self.choices, prompt=prompt if self.use_prompt_options else None
        )

    def reference_choice(self, reference: str | None) -> str:
        """The option label of the reference; raises MissingReferenceError if it has none."""
        expected = require_reference(reference, scorer="MultipleChoice").strip()
        if len(expected) == 1 and expected.upper() in self.choices:
            return expected.upper()
        chosen = extract_choice(expected, self.choices)
        if chosen is None:
            raise MissingReferenceError(
                f"MultipleChoice: reference {expected[:80]!r} names none of the options "
                f"{', '.join(self.choices)}"
            )
        return chosen

    def score(self, prompt: str, response: str, reference: str | None = None) -> float:
        """Compare the chosen option with the reference option."""
        expected = self.reference_choice(reference)
        return float(self.extract(response, prompt) == expected)
