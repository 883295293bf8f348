"""What a rationale says: the answer it concludes on, the options it names, and how its letter mentions move
when a question's options are put in another order.

Curation keeps a rationale only if its own conclusion is the gold answer (`supports`), trains it in the test's
option order and shuffled copies of it (`ChoiceQuestion.permuted`, `remap_letters`); evaluation reads an
output's option by its content (`option_by_content`) and sorts its failures (`failure_kind`) with the same
readers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ftcot.calculator import equations
from ftcot.tasks.answers import ALPHABET, YES_NO, AnswerFormat
from ftcot.tasks.prompts import ANSWER_MARKER

# --- a multiple-choice question --------------------------------------------------------------------------

_HEAD = re.compile(r" Answer [Cc]hoices: (?=\(A\))")


@dataclass(frozen=True)
class ChoiceQuestion:
    """A question in the paper's form `stem Answer choices: (A) x, (B) y.` (or Kojima's `stem Answer Choices:
    (A) x (B) y`), taken apart so that it can be written back with its options in another order."""

    stem: str
    options: tuple[str, ...]
    head: str  # " Answer choices: " or " Answer Choices: "
    separator: str  # ", " or " "
    end: str  # "." or ""

    @property
    def letters(self) -> str:
        return ALPHABET[: len(self.options)]

    def render(self) -> str:
        listed = self.separator.join(f"({letter}) {option}" for letter, option in zip(ALPHABET, self.options))
        return f"{self.stem}{self.head}{listed}{self.end}"

    def permuted(self, order: list[int]) -> ChoiceQuestion:
        """The question with option order[i] in slot i."""
        return ChoiceQuestion(self.stem, tuple(self.options[j] for j in order), self.head, self.separator, self.end)


def parse_choices(question: str) -> ChoiceQuestion | None:
    """The question's stem and options, or None when it lists no options in a form it can be rebuilt from
    exactly (so a rebuilt question differs from the original only in its options' order)."""
    heads = list(_HEAD.finditer(question))
    if not heads:
        return None
    head = heads[-1]
    parts = re.split(r"\(([A-Z])\) ", question[head.end() :])[1:]
    letters, texts = "".join(parts[0::2]), parts[1::2]
    if len(texts) < 2 or letters != ALPHABET[: len(texts)]:
        return None
    for separator, end in ((", ", "."), (" ", "")):
        if all(t.endswith(separator) for t in texts[:-1]) and texts[-1].endswith(end):
            options = [t.removesuffix(separator) for t in texts[:-1]] + [texts[-1][: len(texts[-1]) - len(end)]]
            parsed = ChoiceQuestion(question[: head.start()], tuple(options), head.group(), separator, end)
            if parsed.render() == question and all(o.strip() for o in options):
                return parsed
    return None


# --- letter mentions -------------------------------------------------------------------------------------


def _mention_patterns(letters: str) -> list[re.Pattern]:
    """Ways a rationale names an option by its letter: "(B)", "B)", "option B", "choice (B)", "answer is B"."""
    x = f"[{letters}]"
    return [
        re.compile(rf"\(({x})\)"),
        re.compile(rf"(?<![\w(])({x})\)"),
        re.compile(
            rf"\b(?i:option|choice|answer(?:\s+(?:is|was|would\s+be|will\s+be))?)\s*:?\s+({x})"
            rf"(?![\w'’)]|\.\w)"
        ),
    ]


# Words after which a capital "A" is a letter ("A is correct"), not the article ("A week ago").
_AFTER_LETTER = re.compile(
    r"\s+(?:is|was|were|or|and|would|could|should|will|can|cannot|must|seems?|has|does|"
    r"to|fits|matches|gives)\b"
)


def letter_mentions(text: str, letters: str) -> list[tuple[int, int, str]] | None:
    """(start, end, letter) of each letter named in text, in order; None when a lone capital in the letters'
    range cannot be told apart from a mention ("Let C be ...", "A is right"): such a text cannot be remapped
    safely. The article "A" before a lower-case word ("A week ago") is not a mention."""
    spans: dict[int, tuple[int, int, str]] = {}
    for pattern in _mention_patterns(letters):
        for m in pattern.finditer(text):
            spans.setdefault(m.start(1), (m.start(1), m.end(1), m.group(1)))
    for m in re.finditer(rf"\b[{letters}]\b", text):
        after = text[m.end() :]
        article = m.group() == "A" and re.match(r"\s+[a-z]", after) and not _AFTER_LETTER.match(after)
        if m.start() not in spans and not article:
            return None
    return sorted(spans.values())


def remap_letters(text: str, mapping: dict[str, str], letters: str) -> str | None:
    """The text with every letter mention changed by mapping (old letter -> new) and nothing else changed, or
    None when its mentions are ambiguous."""
    mentions = letter_mentions(text, letters)
    if mentions is None:
        return None
    out, at = [], 0
    for start, end, letter in mentions:
        out += [text[at:start], mapping[letter]]
        at = end
    return "".join(out) + text[at:]


def letter_mapping(order: list[int], letters: str) -> dict[str, str]:
    """Old letter -> new letter when option order[i] moves to slot i."""
    return {letters[j]: letters[i] for i, j in enumerate(order)}


# --- options named by their text -------------------------------------------------------------------------

_MONTHS = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
_MONTH = (
    r"(jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|sept?(?:ember)?|"
    r"oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)\.?"
)
_DAY = r"(\d{1,2})(?:st|nd|rd|th)?"
_DATES = [
    (re.compile(r"\b(\d{1,2})/(\d{1,2})/(\d{4})\b"), (0, 1, 2)),
    (re.compile(rf"\b{_MONTH}\s+{_DAY},?\s+(\d{{4}})\b", re.I), (0, 1, 2)),
    (re.compile(rf"\b{_DAY}\s+(?:of\s+)?{_MONTH},?\s+(\d{{4}})\b", re.I), (1, 0, 2)),
]


def _month(word: str) -> int:
    return int(word) if word.isdigit() else _MONTHS.index(word[:3].lower()) + 1


def _dates(text: str) -> list[tuple[int, int, str]]:
    """(start, end, MM/DD/YYYY) of each date written as 4/26/2002 (26/4/2002 where 26 cannot be a month),
    April 26, 2002, Apr. 26th 2002 or 26 April 2002; years of four digits only."""
    found = []
    for pattern, (month, day, year) in _DATES:
        for m in pattern.finditer(text):
            groups = m.groups()
            mm, dd = _month(groups[month]), int(groups[day])
            if mm > 12 >= dd:
                mm, dd = dd, mm
            if 1 <= mm <= 12 and 1 <= dd <= 31:
                found.append((m.start(), m.end(), f"{mm:02d}/{dd:02d}/{groups[year]}"))
    return found


def normalized(text: str) -> str:
    """Without case or spacing differences."""
    return " ".join(text.lower().split())


NOT_AN_OPTION = "-"  # a conclusion that is none of the options (a date no option holds)


def _date_options(question: ChoiceQuestion) -> list[str] | None:
    """Each option as MM/DD/YYYY where every option is one date (Date Understanding), else None."""
    dates = [_dates(option) for option in question.options]
    if all(len(d) == 1 and d[0][:2] == (0, len(option)) for d, option in zip(dates, question.options)):
        return [d[0][2] for d in dates]
    return None


def option_mentions(text: str, options: tuple[str, ...]) -> list[tuple[int, int, int]]:
    """(start, end, option index) of each option named by its text (without case or a final full stop), in
    order; where one mention
    lies inside a longer one, the longer wins ("red" in "dark red")."""
    lowered, found = text.lower(), []
    for i, option in enumerate(options):
        words = normalized(option.rstrip(".,;:!? ")).split()  # Kojima's options end in a full stop
        if words:
            pattern = r"\s+".join(re.escape(w) for w in words)
            found += [(m.start(), m.end(), i) for m in re.finditer(rf"(?<!\w){pattern}(?!\w)", lowered)]
    found.sort(key=lambda f: (f[0], -f[1]))
    kept: list[tuple[int, int, int]] = []
    for f in found:
        if not kept or f[0] >= kept[-1][1]:  # not inside (or across) the longer mention before it
            kept.append(f)
    return kept


# --- the conclusion of a rationale -----------------------------------------------------------------------

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")


def _in_last_sentence(text: str, named: list[tuple[int, int, str]]) -> set[str]:
    """The answers named in the last sentence that names any (a full stop inside a mention, as in "Sept. 8",
    ends no sentence)."""
    if not named:
        return set()
    last = max(start for start, _, _ in named)
    inside = lambda at: any(start < at < end for start, end, _ in named)  # noqa: E731
    starts = [0] + [m.end() for m in _SENTENCE_END.finditer(text) if m.end() <= last and not inside(m.start())]
    return {answer for start, _, answer in named if start >= starts[-1]}


def _one(answers: set[str]) -> str | None:
    return next(iter(answers)) if len(answers) == 1 else None


def letter_conclusion(text: str, question: ChoiceQuestion) -> str | None:
    """The letter named in the last sentence that names letters ("so the answer is (B)"), or None (none named,
    several, or capitals that may not be letters)."""
    return _one(_in_last_sentence(text, letter_mentions(text, question.letters) or []))


def content_conclusion(text: str, question: ChoiceQuestion) -> str | None:
    """The letter of the option the text concludes on by its content, NOT_AN_OPTION, or None where it names
    none. Where the options are dates, the last date it states in any common form (a computed value, like a
    number, is the answer it ends on), or NOT_AN_OPTION when no option holds it; otherwise the option named in
    the last sentence that names options, by its text (None where it names several: "Bob has the red ball,
    Alice the pink ball")."""
    dates = _date_options(question)
    if dates:
        stated = _dates(text)
        if not stated:
            return None
        last = max(stated)[2]
        return question.letters[dates.index(last)] if last in dates else NOT_AN_OPTION
    named = [(start, end, question.letters[i]) for start, end, i in option_mentions(text, question.options)]
    return _one(_in_last_sentence(text, named))


# A letter string stated in a sentence: quoted ("n-e-h-h", 'annt'), or the run of letters the sentence ends on after
# a verb of result or a colon ("we get: neh h", "gives us yajc", "is lsaa."), or a word alone in it ("- lsaa"),
# where gpt-3.5 writes it without quotes; a word and single letters ("neh h") or groups of at most two letters
# ("ne na") are one string, a word and short words ("yajc in the end") the word. Unquoted, a string is at least
# two letters: "Kc: c" names a word's letter and "a" is an article. Only a sentence's last 200 characters are
# searched for it (a run sits at the end). Its letters are read without the separators between them.
_QUOTED = re.compile(r"[\"“]([^\"“”\n]+)[\"”]|(?<![^\W\d_])['‘]([^\W\d_]+)['’](?![^\W\d_])")
_LETTER_RUN = r"[^\W\d_]+(?:(?:\s*,\s*|\s+|[-.])[^\W\d_]{1,3})*"
_ENDING_RUN = re.compile(
    r"(?:\b(?:is|are|be|was|gets?|gives?(?:\s+us)?|ha(?:ve|s)|yields?|makes?|forms?|spells?)\b|[:=])\W*"
    rf"({_LETTER_RUN})\W*$|^\W*([a-z]{{2,}}|[A-Z]{{2,}})\W*$",
    re.I,
)
_ALONE_CASE = re.compile(r"[a-z]+|[A-Z]+")  # a word alone is all lower or all upper case: not "Done."
_SEPARATORS = re.compile(r"[\s,.-]+")


def _letter_strings(sentence: str) -> list[str]:
    """The letter strings a sentence states, in the order it states them, without their separators."""
    tail = sentence[-200:]
    found = [(m.start(), _SEPARATORS.sub("", m.group(1) or m.group(2))) for m in _QUOTED.finditer(sentence)]
    for m in _ENDING_RUN.finditer(tail):
        groups = _SEPARATORS.split(m.group(1) or m.group(2))
        if not all(len(g) == 1 for g in groups[1:]) and not all(len(g) <= 2 for g in groups):
            groups = groups[:1]  # "yajc in the end", "yajc, or y-a-j-c": the word after "is"
        run = "".join(groups)
        if len(run) >= 2 and (m.group(1) or _ALONE_CASE.fullmatch(run)):
            found.append((len(sentence) - len(tail) + m.start(), run))
    return [text for _, text in sorted(found)]


_FRACTION = re.compile(r"(?<![\d/.])(?:(\d+)\s+and\s+)?(\d+)/(\d+)(?![\d/])")
# An explicit yes or no: a sentence that starts with it, or "the answer is no" (not "no one flips the coin").
_YES_NO = re.compile(r"^\W*(yes|no)\b|\banswer\s+(?:is|would\s+be|:)\s*\W*(yes|no)\b", re.I)


def _values(sentence: str, fmt: AnswerFormat) -> list[str]:
    """The answers a sentence states that the format can read."""
    if fmt.numeric:  # with fractions' values: "3 and 1/4 laps" states 3.25
        fractions = [int(whole or 0) + int(a) / int(b) for whole, a, b in _FRACTION.findall(sentence) if int(b)]
        return fmt.candidates(sentence) + [repr(f) for f in fractions]
    if fmt is YES_NO:
        return [m.group(1) or m.group(2) for m in _YES_NO.finditer(sentence)]
    if fmt.name == "letter string":
        return [c for q in _letter_strings(sentence) for c in fmt.candidates(q)]
    return fmt.candidates(sentence)


def conclusion(text: str, fmt: AnswerFormat) -> list[str]:
    """The answers stated in the last sentence of a rationale (of a task without choices) that states any the
    format can read: its numbers (fractions too), an explicit yes or no, or for letter strings its quoted
    strings ("n-e-h-h" read as "nehh") and the letters it ends on ("we get: neh h")."""
    for sentence in reversed(_SENTENCE_END.split(text)):
        found = _values(sentence.strip(), fmt)
        if found:
            return found
    return []


def _agrees(answer: str, gold: str, fmt: AnswerFormat) -> bool:
    """A stated answer is the gold one: as the format compares them, or a number that rounds to the gold's
    decimals (2/3 is 0.667)."""
    if fmt.matches(answer, gold):
        return True
    if not fmt.numeric:
        return False
    decimals = len(gold.partition(".")[2])
    try:
        return round(float(answer.replace(",", "")), decimals) == float(gold.replace(",", ""))
    except ValueError:
        return False


def supports(text: str, fmt: AnswerFormat, question: str, gold: str) -> bool | None:
    """Whether a rationale's own conclusion is the gold answer: True, False (it concludes on another answer),
    or None when it states none. A choice rationale must name no other option last, by letter or by content;
    another one must state the gold answer in the last sentence that states any ("We need 13 rooms for all 390
    students" concludes on 13); a free-text rationale supports its gold answer when it contains it."""
    if fmt.choice:
        parsed = parse_choices(question)
        said = (
            {c for c in (letter_conclusion(text, parsed), content_conclusion(text, parsed)) if c} if parsed else set()
        )
        return None if not said else said == {gold}
    if fmt.name == "text":  # free text: only the gold's own words can be looked for
        return True if fmt.normalize(gold) in normalized(text) else None
    concluded = conclusion(text, fmt)
    return any(_agrees(answer, gold, fmt) for answer in concluded) if concluded else None


def concluded_answer(text: str, fmt: AnswerFormat, question: str) -> str | None:
    """The one answer a rationale concludes on, in the format's form, or None where it states none (or several
    options last): a choice rationale's letter in its last sentence naming one, else the option it names by
    content; another's last answer in the last sentence that states any."""
    if fmt.choice:
        parsed = parse_choices(question)
        if parsed is None:
            return None
        concluded = letter_conclusion(text, parsed) or content_conclusion(text, parsed)
        return None if concluded == NOT_AN_OPTION else concluded
    if fmt.name == "text":
        return None
    concluded = conclusion(text, fmt)
    return concluded[-1] if concluded else None


def option_by_content(output: str, question: str, marker: str | None = ANSWER_MARKER) -> str | None:
    """The letter of the option a choice output's rationale (before its answer marker) concludes on by its
    content, or None."""
    parsed = parse_choices(question)
    concluded = content_conclusion(output.split(marker)[0] if marker else output, parsed) if parsed else None
    return None if concluded == NOT_AN_OPTION else concluded


# --- why an output is wrong ------------------------------------------------------------------------------


def is_loop(text: str, min_repeats: int = 3, min_words: int = 8) -> bool:
    """Whether the text ends in a loop: its last words (at least min_words of them) repeat with a period of n
    words (n up to 40), at least min_repeats times over; a last word cut off by the token limit is left out."""
    words = text.split()
    for tail in (words, words[:-1]):
        for n in range(1, 41):
            span = max(n * min_repeats, min_words)
            if len(tail) >= span and all(tail[-i] == tail[-i - n] for i in range(1, span - n + 1)):
                return True
    return False


# A number task's wrong conclusion is told apart by the equations its rationale states (ftcot.calculator reads
# them): one of them wrong, or all of them right, as with the calculator on. A letter-string task's by the letter
# it names for each word of the question: one of them wrong, or all of them right and joined wrong.
FAILURE_KINDS = {
    "loop": "no answer: a repetition loop",
    "cut_off": "no answer: cut off or stopped before the marker",
    "unparsed": "no answer could be read from it",
    "right_conclusion": "the rationale reaches the gold answer, the answer after the marker is wrong",
    "wrong_arithmetic": "the rationale reaches a wrong answer, an equation in it wrong",
    "wrong_setup": "the rationale reaches a wrong answer, its equations right (a wrong set-up)",
    "wrong_letter": "the rationale reaches a wrong answer, a word's letter in it wrong",
    "wrong_join": "the rationale reaches a wrong answer, every word's letter in it right (joined wrong)",
    "wrong_conclusion": "the rationale reaches a wrong answer",
    "no_conclusion": "the rationale names no answer",
    "wrong_answer": "a wrong answer (no rationale in the output read)",
}


def letters_named(rationale: str, question: str) -> str | None:
    """The letters a rationale names for the words the question quotes, joined in the question's order ("Lucky -
    y", 'The last letter of "Lucky" is "y".'): for each word, the last letter standing alone after it in a line
    or sentence that names no other of the words ("Lucky ends with a y": y); None when the question quotes no
    words or one has no letter."""
    quoted = _QUOTED.findall(question)
    words = (quoted[-1][0] or quoted[-1][1]).split() if quoted else []
    found: dict[str, str] = {}
    for segment in _SENTENCE_END.split(rationale):
        named = {w: m for w in words if (m := re.search(rf"(?<![^\W\d_]){re.escape(w)}(?![^\W\d_])", segment))}
        if len(named) == 1:
            [(word, mention)] = named.items()
            letters = _LONE_LETTER.findall(segment, mention.end())
            if letters and word not in found:
                found[word] = letters[-1]
    return "".join(found[w] for w in words) if words and all(w in found for w in words) else None


# One letter alone: not the s of "Lucky's".
_LONE_LETTER = re.compile(r"(?<![^\W\d_])(?<![^\W\d_]')([^\W\d_])(?![^\W\d_])")


def failure_kind(
    output: str,
    prediction: str | None,
    correct: bool,
    fmt: AnswerFormat,
    question: str,
    gold: str,
    marker: str | None,
    reasoning: bool,
) -> str | None:
    """Why a prediction is wrong (a key of FAILURE_KINDS), or None when it is right."""
    if correct:
        return None
    if marker and marker not in output:
        return "loop" if is_loop(output) else "cut_off"
    if prediction is None:
        return "unparsed"
    if not reasoning:
        return "wrong_answer"
    rationale = output.split(marker)[0] if marker else output
    if fmt.choice:  # the option its rationale reaches by content: the letter after it is the student's answer
        parsed = parse_choices(question)
        concluded = content_conclusion(rationale, parsed) if parsed else None
        right = None if concluded is None else concluded == gold
    else:
        right = supports(rationale, fmt, question, gold)
    if right is False and fmt.numeric:  # its arithmetic wrong, or (every `a op b = c` right) its set-up
        stated = equations(rationale)
        if stated:
            return "wrong_setup" if all(ok for *_, ok in stated) else "wrong_arithmetic"
    letters = letters_named(rationale, question) if right is False and fmt.name == "letter string" else None
    if letters and len(letters) == len(gold):  # not where a name is two words ("Juan Manuel": one letter)
        return "wrong_join" if fmt.matches(letters, gold) else "wrong_letter"
    return {True: "right_conclusion", False: "wrong_conclusion", None: "no_conclusion"}[right]
