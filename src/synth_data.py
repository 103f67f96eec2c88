"""Synthesize (query, positive, negative) training triplets from the Korean electronics glossary.

For every concept the script writes Korean search queries in several styles (acronym question, full
name, English name, alias or spacing variant, description -> term, Korean-English code-switching,
short keywords), pairs each with a passage grounded in the concept's own definition, and adds a hard
negative: a passage of a confusable sibling concept, else of a concept from the same category, else a
random one — never of the same concept.

The split is by concept (default): no concept of test.jsonl appears in train.jsonl in any form, so the
test score measures generalisation to concepts the model never saw. ``--split row`` is the naive
row-level split, kept only for comparison.

    uv run python -m src.synth_data --pairs_per_term 6 --pairs_per_acronym 8

Inputs: the domain file (data/templates_ko.yaml: categories, query and passage templates; src.domain),
the rich glossary (data/glossary_ko.jsonl) and the seed-style files data/terms_electronics_ko.txt
(one term per line) and data/acronyms_ko.jsonl ({acronym, full, definition}); lines of the seed-style
files that the glossary does not cover become extra concepts. Outputs (in --output_dir): train.jsonl,
test.jsonl (src.data.Triplet rows), corpus_train.jsonl and corpus_test.jsonl (src.data.Passage: every
passage of each split's concepts, the retrieval corpus of the evaluation).
"""

from __future__ import annotations

import dataclasses
import hashlib
import random
import re
import sys
import unicodedata
from collections import Counter, defaultdict
from pathlib import Path

from src import cli
from src.cli import UserError
from src.data import (
    AcronymEntry,
    DataError,
    GeneralPair,
    GlossaryEntry,
    Passage,
    Triplet,
    iter_json_lines,
    load_glossary,
    normalize_name,
    parse_record,
    read_jsonl,
    read_text_lines,
    write_jsonl_files,
)
from src.domain import QUERY_SLOTS, SLOT, Domain, default_domain, load_domain


@dataclasses.dataclass(frozen=True)
class SynthConfig:
    """Everything besides the input files that decides the generated rows."""

    pairs_per_term: int = 6  # queries per concept about its term, English name, aliases and descriptions
    pairs_per_acronym: int = 8  # extra queries per concept that has an acronym
    negatives: str = "hard"  # hard: confusable sibling, else same category, else random; random: any
    split: str = "concept"  # concept: test concepts never appear in train; row: naive row-level split
    test_split: float = 0.1  # 10% of 1,500+ concepts: 160 concepts the model never sees
    wordings: str = "all"  # all: every definition of a concept makes passages; first: the primary one only
    query_noise: float = 0.0  # share of training rows that also get a copy with a noisy query
    cross_lingual: int = 0  # training rows per concept that pair English and Korean (0-3)
    general_share: float = 0.0  # general-language rows added to training, as a share of the domain rows
    seed: int = 42


# ----------------------------------------------------------------------------- Korean particles

HANGUL_FIRST, HANGUL_LAST, RIEUL_INDEX = 0xAC00, 0xD7A3, 8


def final_consonant(word: str, consonant_final: dict[str, str]) -> str | None:
    """The final consonant of a word as read aloud: None after a vowel, "ㄹ" for rieul, else "other".

    Hangul syllables use their own final; a Latin letter or digit is read by its Korean name, whose final
    ``consonant_final`` gives (the domain file's; PWM -> 엠 -> ㅁ, ADC -> 씨 -> none, RS-485 -> 오 -> none).
    Trailing punctuation such as ')' is skipped."""
    for ch in reversed(word):
        code = ord(ch)
        if HANGUL_FIRST <= code <= HANGUL_LAST:
            index = (code - HANGUL_FIRST) % 28
            return None if index == 0 else ("ㄹ" if index == RIEUL_INDEX else "other")
        if ch.isascii() and ch.isalnum():
            final = consonant_final.get(ch.upper())
            return None if final is None else ("ㄹ" if final == "ㄹ" else "other")
    return None


def with_particle(
    word: str, particle: str, reading: str | None = None, consonant_final: dict[str, str] | None = None
) -> str:
    """Attach a Korean particle written consonant-form first ("이/가", "은/는", "을/를", "과/와",
    "으로/로", "이란/란", "이라고/라고"), choosing by the final sound of ``reading`` (default: the word);
    ``consonant_final``: the Latin readings (default: the default domain's)."""
    after_consonant, after_vowel = particle.split("/")
    final = final_consonant(reading or word, consonant_final or default_domain().consonant_final)
    if after_consonant == "으로":  # 로 also follows a rieul final: 회로로, 채널로
        return word + (after_vowel if final in (None, "ㄹ") else after_consonant)
    return word + (after_vowel if final is None else after_consonant)


# ----------------------------------------------------------------------------- templates


def render(
    template: str, values: dict[str, str], domain: Domain, readings: dict[str, str | None] | None = None
) -> str:
    """Fill a template's slots ({T}, {A:은/는}, ...) with ``values`` by slot letter, attaching each slot's
    particle by the final sound of the value, or of its Korean reading in ``readings`` (an acronym's)."""
    readings = readings or {}

    def fill(m: re.Match) -> str:
        value = values[m.group(1)]
        if not m.group(2):
            return value
        return with_particle(value, m.group(2), readings.get(m.group(1)), domain.consonant_final)

    return SLOT.sub(fill, template)


@dataclasses.dataclass(frozen=True)
class Query:
    style: str
    text: str


def query_candidates(
    concept: GlossaryEntry, domain: Domain
) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """All queries a concept can get from the domain's templates, by style, in two buckets: the term's and
    the acronym's."""

    def fill(style: str, values: list[str | None], reading: str | None = None) -> list[str]:
        slot = QUERY_SLOTS[style]
        return [
            render(t, {slot: v}, domain, {slot: reading}) for v in values if v for t in domain.queries[style]
        ]

    c = concept
    term_bucket = {
        "full_name_question": fill("full_name_question", [c.term]),
        "english_question": fill("english_question", [c.english]),
        "alias_variant": fill("alias_variant", c.aliases),
        "definition_to_term": fill("definition_to_term", c.descriptions),
        "code_switching": fill("code_switching", [c.english]),
        "keyword": fill("keyword", [c.term, *c.aliases[:2], c.english]),
    }
    acronym_bucket = {}
    if c.acronym:
        acronym_bucket = {
            "acronym_question": fill("acronym_question", [c.acronym], c.reading),
            "code_switching": fill("code_switching", [c.acronym]),
            "keyword": fill("keyword", [c.acronym]) + [f"{c.acronym} {c.term}"],
        }
    return term_bucket, acronym_bucket


def pick_queries(bucket: dict[str, list[str]], n: int, taken: set[str], rng: random.Random) -> list[Query]:
    """Up to ``n`` distinct queries, round-robin over the bucket's styles so that every style is used."""
    pools = {style: rng.sample(texts, len(texts)) for style, texts in bucket.items() if texts}
    order = rng.sample(sorted(pools), len(pools))
    picked: list[Query] = []
    while len(picked) < n and any(pools.values()):
        for style in order:
            while pools[style] and len(picked) < n:
                text = pools[style].pop()
                if text not in taken:
                    taken.add(text)
                    picked.append(Query(style, text))
                    break
    return picked


# ----------------------------------------------------------------------------- passages


def first_sentence(text: str) -> str:
    """The text up to and including its first '다.' sentence end (the whole text if there is none)."""
    end = text.find("다. ")
    return text if end < 0 else text[: end + 2]


def passages_for(concept: GlossaryEntry, domain: Domain, wordings: str = "all") -> list[str]:
    """The concept's corpus passages, each carrying a definition (or the domain's generic sentence if it has
    none).

    From the primary definition: "term (English, acronym): definition", the definition alone, and a short
    form from the domain's acronym or category passage template; ``wordings="all"`` adds every other
    wording (another register) as it is written, ``"first"`` keeps the primary definition only."""
    c = concept
    if not c.definition:
        return [render(domain.passages["no_definition"], {"T": c.term}, domain)]
    names = ", ".join(x for x in (c.english, c.acronym) if x)
    texts = [f"{c.term} ({names}): {c.definition}" if names else f"{c.term}: {c.definition}", c.definition]
    first = first_sentence(c.definition)
    if c.acronym and c.english:
        values = {"A": c.acronym, "E": c.english, "T": c.term, "F": first}
        texts.append(render(domain.passages["acronym"], values, domain, {"A": c.reading}))
    else:
        values = {"L": domain.categories[c.category], "T": c.term, "F": first}
        texts.append(render(domain.passages["category"], values, domain))
    if wordings == "all":
        texts += list(c.definitions.values())[1:]
    return list(dict.fromkeys(texts))


# ----------------------------------------------------------------------------- query noise

HANGUL_VOWELS = "ㅏㅐㅑㅒㅓㅔㅕㅖㅗㅘㅙㅚㅛㅜㅝㅞㅟㅠㅡㅢㅣ"  # medial order of Unicode syllables
# a slip of one key on the 2-set keyboard, or of the shift key
VOWEL_SLIPS = {"ㅏ": "ㅓㅣ", "ㅓ": "ㅏㅗㅕ", "ㅗ": "ㅓㅛ", "ㅐ": "ㅔㅑㅒ", "ㅔ": "ㅐㅖ", "ㅜ": "ㅠㅡ", "ㅠ": "ㅜ",
               "ㅡ": "ㅜ", "ㅣ": "ㅏ", "ㅕ": "ㅑㅓ", "ㅑ": "ㅕㅐ", "ㅛ": "ㅕㅗ"}  # fmt: skip


def _syllables(text: str) -> list[int]:
    return [i for i, ch in enumerate(text) if HANGUL_FIRST <= ord(ch) <= HANGUL_LAST]


def vowel_slip(text: str, rng: random.Random) -> str:
    """One Hangul syllable typed with a neighbouring vowel key (컨버터 -> 컨버타)."""
    options = [
        i for i in _syllables(text) if HANGUL_VOWELS[(ord(text[i]) - HANGUL_FIRST) // 28 % 21] in VOWEL_SLIPS
    ]
    if not options:
        return text
    i = rng.choice(options)
    code = ord(text[i]) - HANGUL_FIRST
    vowel = HANGUL_VOWELS[code // 28 % 21]
    new = HANGUL_VOWELS.index(rng.choice(VOWEL_SLIPS[vowel]))
    return text[:i] + chr(HANGUL_FIRST + (code // 588) * 588 + new * 28 + code % 28) + text[i + 1 :]


def drop_final(text: str, rng: random.Random) -> str:
    """One Hangul syllable without its final consonant (용량 -> 요량)."""
    options = [i for i in _syllables(text) if (ord(text[i]) - HANGUL_FIRST) % 28]
    if not options:
        return text
    i = rng.choice(options)
    code = ord(text[i]) - HANGUL_FIRST
    return text[:i] + chr(HANGUL_FIRST + code - code % 28) + text[i + 1 :]


NOISE = {
    "vowel_slip": vowel_slip,
    "drop_final": drop_final,
    "no_spaces": lambda text, rng: re.sub(r"(?<=[가-힣])\s+|\s+(?=[가-힣])", "", text),
    "lower_latin": lambda text, rng: text.lower(),
}


def noisy(text: str, rng: random.Random) -> str:
    """The query as people type it in a hurry: one or two of a vowel slip, a dropped final consonant,
    no spaces and lower-case Latin letters; the text itself when none of them changes anything."""
    ops = rng.sample(sorted(NOISE), 2 if rng.random() < 0.3 else 1)
    for op in ops:
        text = NOISE[op](text, rng)
    return text


# ----------------------------------------------------------------------------- inputs


def load_concepts(
    glossary: Path | None, terms: Path | None, acronyms: Path | None, domain: Domain
) -> list[GlossaryEntry]:
    """The glossary's concepts (checked against the domain) plus every seed-file term or acronym that the
    glossary does not cover (category "general")."""
    concepts = load_glossary(glossary, domain) if glossary else []
    known = {normalize_name(n) for c in concepts for n in c.names}

    def add(entry: GlossaryEntry) -> None:
        concepts.append(entry)
        known.update(normalize_name(n) for n in entry.names)

    if acronyms:
        rows = [(n, parse_record(obj, AcronymEntry, acronyms, n)) for n, obj in iter_json_lines(acronyms)]
        if not rows:
            raise DataError(acronyms, "file is empty (no JSON lines)")
        for _, row in rows:
            if normalize_name(row.acronym) in known or normalize_name(row.full) in known:
                continue
            korean_full = any(HANGUL_FIRST <= ord(ch) <= HANGUL_LAST for ch in row.full)
            slug = re.sub(r"[^a-z0-9]+", "_", row.acronym.lower()).strip("_") or _digest(row.acronym)
            add(
                GlossaryEntry(
                    id=f"acronym_{slug}",
                    term=row.full,
                    category="general",
                    definitions={"textbook": row.definition},
                    english=None if korean_full else row.full,
                    acronym=row.acronym,
                )
            )
    if terms:
        for _, term in read_text_lines(terms):
            if normalize_name(term) not in known:
                add(GlossaryEntry(id=f"term_{_digest(term)}", term=term, category="general"))
    return concepts


def _digest(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:10]


# ----------------------------------------------------------------------------- generation


def split_concepts(concepts: list[GlossaryEntry], test_split: float, rng: random.Random) -> set[str]:
    """Ids of the test concepts: ``test_split`` of each category (stratified), chosen by the seeded rng."""
    by_category: dict[str, list[str]] = defaultdict(list)
    for c in concepts:
        by_category[c.category].append(c.id)
    test: set[str] = set()
    for category in sorted(by_category):
        ids = sorted(by_category[category])
        rng.shuffle(ids)
        test.update(ids[: round(len(ids) * test_split)])
    return test


def pick_negative(
    concept: GlossaryEntry, pool: list[str], by_id: dict[str, GlossaryEntry], hard: bool, rng: random.Random
) -> str:
    """Id of the negative concept from ``pool`` (sorted ids): a confusable sibling, else the same
    category, else any other concept; never the concept itself. ``hard=False`` always picks at random."""
    others = [i for i in pool if i != concept.id]
    if hard:
        members = set(pool)
        siblings = [i for i in concept.confusables if i in members]
        if siblings:
            return rng.choice(siblings)
        same_category = [i for i in others if by_id[i].category == concept.category]
        if same_category:
            return rng.choice(same_category)
    return rng.choice(others)


def make_rows(
    concepts: list[GlossaryEntry],
    pool: list[str],
    by_id: dict[str, GlossaryEntry],
    passages: dict[str, list[str]],
    config: SynthConfig,
    domain: Domain,
    rng: random.Random,
) -> list[Triplet]:
    """Triplets for ``concepts``; negatives come from the concepts whose ids are in ``pool`` (sorted).
    A concept's queries take its passages in turn as positives, so every wording is used."""
    rows: list[Triplet] = []
    for c in concepts:
        term_bucket, acronym_bucket = query_candidates(c, domain)
        taken: set[str] = set()
        queries = pick_queries(term_bucket, config.pairs_per_term, taken, rng)
        queries += pick_queries(acronym_bucket, config.pairs_per_acronym, taken, rng)
        own = rng.sample(passages[c.id], len(passages[c.id]))
        for k, q in enumerate(queries):
            negative_id = pick_negative(c, pool, by_id, config.negatives == "hard", rng)
            rows.append(
                Triplet(
                    query=q.text,
                    positive=own[k % len(own)],
                    negative=rng.choice(passages[negative_id]),
                    concept_id=c.id,
                    negative_concept_id=negative_id,
                    style=q.style,
                    category=c.category,
                )
            )
    return rows


def cross_lingual_rows(
    concepts: list[GlossaryEntry],
    pool: list[str],
    by_id: dict[str, GlossaryEntry],
    n: int,
    rng: random.Random,
) -> list[Triplet]:
    """Up to ``n`` rows per concept with an English name that cross languages: Korean term -> English name,
    English name -> Korean term, English name -> a Korean wording of the definition (no names around it).
    The negative is the same kind of text of a negative concept (hard: a confusable, else same category)."""
    rows = []
    for c in concepts:
        if not c.english or not c.definition:
            continue
        kinds = [("term", "english"), ("english", "term"), ("english", "definition")]
        for source, target in rng.sample(kinds, min(n, len(kinds))):
            other = by_id[pick_negative(c, pool, by_id, True, rng)]
            if target == "english" and not other.english:
                continue
            text = (lambda x: rng.choice(list(x.definitions.values()))) if target == "definition" else (
                lambda x, t=target: getattr(x, t))  # fmt: skip
            rows.append(
                Triplet(getattr(c, source), text(c), text(other), c.id, other.id, "cross_lingual", c.category)
            )
    return rows


def general_rows(pairs: list[GeneralPair], n: int, rng: random.Random) -> list[Triplet]:
    """``n`` general-language rows (at most one per pair); each negative is the passage of a pair on
    another topic. Every pair is its own concept, so concept-aware batches never pair it with itself."""
    chosen = rng.sample(range(len(pairs)), min(n, len(pairs)))
    rows = []
    for i in chosen:
        others = [j for j in range(len(pairs)) if pairs[j].topic != pairs[i].topic] or [
            j for j in range(len(pairs)) if j != i
        ]
        j = rng.choice(others)
        rows.append(
            Triplet(
                pairs[i].query,
                pairs[i].positive,
                pairs[j].positive,
                f"general_{i}",
                f"general_{j}",
                "general",
                "general",
            )
        )
    return rows


def with_noisy_copies(rows: list[Triplet], share: float, rng: random.Random) -> list[Triplet]:
    """The rows plus, for a ``share`` of them, a copy whose query carries typing noise (style ``noisy``)."""
    copies = []
    for r in rows:
        if rng.random() < share:
            query = noisy(r.query, rng)
            if query != r.query:
                copies.append(Triplet(**{**dataclasses.asdict(r), "query": query, "style": "noisy"}))
    return rows + copies


def dedupe(rows: list[Triplet]) -> list[Triplet]:
    """Drop rows whose (query, positive, negative) already occurred, keeping the first."""
    seen: set[tuple[str, str, str]] = set()
    kept = []
    for r in rows:
        key = (r.query, r.positive, r.negative)
        if key not in seen:
            seen.add(key)
            kept.append(r)
    return kept


class SplitError(UserError):
    """The inputs are too small for the requested split."""


@dataclasses.dataclass
class Dataset:
    train: list[Triplet]
    test: list[Triplet]
    corpus_train: list[Passage]
    corpus_test: list[Passage]
    generic: list[GlossaryEntry]  # concepts without a definition (generic passages only)


def build_dataset(
    concepts: list[GlossaryEntry],
    config: SynthConfig,
    domain: Domain,
    general: list[GeneralPair] | None = None,
) -> Dataset:
    """Split, generate and deduplicate with the domain's templates; everything is decided by
    ``config.seed``. Cross-lingual rows, noisy copies and general-language rows (from ``general``) are
    added to the training rows only: the test split keeps the templates' own queries."""
    rng = random.Random(config.seed)
    by_id = {c.id: c for c in concepts}
    passages = {c.id: passages_for(c, domain, config.wordings) for c in concepts}

    def corpus(ids: set[str]) -> list[Passage]:
        return [
            Passage(f"{c.id}#{k}", c.id, c.category, text)
            for c in concepts
            if c.id in ids
            for k, text in enumerate(passages[c.id])
        ]

    if config.split == "concept":
        test_ids = split_concepts(concepts, config.test_split, rng)
        train_ids = set(by_id) - test_ids
        if min(len(train_ids), len(test_ids)) < 2:
            raise SplitError(
                f"the split leaves {len(train_ids)} train and {len(test_ids)} test concepts; each side needs "
                "at least 2 (add concepts or change --test_split)"
            )
        train_concepts = [c for c in concepts if c.id in train_ids]
        train = make_rows(train_concepts, sorted(train_ids), by_id, passages, config, domain, rng)
        test = make_rows(
            [c for c in concepts if c.id in test_ids], sorted(test_ids), by_id, passages, config, domain, rng
        )
        train += cross_lingual_rows(train_concepts, sorted(train_ids), by_id, config.cross_lingual, rng)
        train = with_noisy_copies(train, config.query_noise, rng)
        if general and config.general_share > 0:
            train += general_rows(general, round(len(train) * config.general_share), rng)
        train, test = dedupe(train), dedupe(test)
    else:  # row-level split: the same concepts (and often the same passages) end up on both sides
        train_ids = test_ids = set(by_id)
        rows = dedupe(make_rows(concepts, sorted(by_id), by_id, passages, config, domain, rng))
        rng.shuffle(rows)
        n_test = round(len(rows) * config.test_split)
        test, train = rows[:n_test], rows[n_test:]
    generic = [c for c in concepts if not c.definition]
    return Dataset(train, test, corpus(train_ids), corpus(test_ids), generic)


def summary(data: Dataset, domain: Domain) -> str:
    """A plain-text table: concepts, passages and rows per split, rows per style and per category."""
    lines = []

    def row(label: str, train: object, test: object) -> None:
        width = sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in label)
        lines.append(f"  {label}{' ' * max(1, 46 - width)}{train!s:>8}{test!s:>8}")

    row("", "train", "test")
    row("concepts", len({r.concept_id for r in data.train}), len({r.concept_id for r in data.test}))
    row("corpus passages", len(data.corpus_train), len(data.corpus_test))
    row("rows", len(data.train), len(data.test))
    lines.append("  rows per query style")
    styles = Counter(r.style for r in data.train), Counter(r.style for r in data.test)
    for style in [*QUERY_SLOTS, "cross_lingual", "noisy", "general"]:
        if styles[0][style] or styles[1][style]:
            row(f"  {style}", styles[0][style], styles[1][style])
    lines.append("  rows per category")
    categories = Counter(r.category for r in data.train), Counter(r.category for r in data.test)
    for key, label in domain.categories.items():
        if categories[0][key] or categories[1][key]:
            row(f"  {key} ({label})", categories[0][key], categories[1][key])
    return "\n".join(lines)


def build_parser() -> cli.ArgumentParser:
    parser = cli.ArgumentParser(__doc__)
    defaults = SynthConfig()
    inputs = parser.add_argument_group("inputs (pass an empty string to leave one out)")
    inputs.add_argument("--glossary", type=cli.optional_input_file, default="data/glossary_ko.jsonl",
                        help="rich glossary JSONL")  # fmt: skip
    inputs.add_argument("--terms", type=cli.optional_input_file, default="data/terms_electronics_ko.txt",
                        help="one term per line")  # fmt: skip
    inputs.add_argument("--acronyms", type=cli.optional_input_file, default="data/acronyms_ko.jsonl",
                        help="JSONL of {acronym, full, definition}")  # fmt: skip
    inputs.add_argument("--templates", type=cli.input_file, default="data/templates_ko.yaml",
                        help="the domain file: categories, registers, query and passage templates")  # fmt: skip
    gen = parser.add_argument_group("generation")
    gen.add_argument("--pairs_per_term", type=cli.positive_int, default=defaults.pairs_per_term,
                     help="queries per concept about its term, English name, aliases and description")  # fmt: skip
    gen.add_argument("--pairs_per_acronym", type=cli.non_negative_int,
                     default=defaults.pairs_per_acronym, help="extra queries per concept that has an acronym")  # fmt: skip
    gen.add_argument("--negatives", choices=["hard", "random"], default=defaults.negatives,
                     help="hard: confusable sibling, else same category, else random")  # fmt: skip
    gen.add_argument("--wordings", choices=["all", "first"], default=defaults.wordings,
                     help="all: every definition wording (register) of a concept becomes passages and positives; "
                          "first: the primary definition only")  # fmt: skip
    gen.add_argument("--query_noise", type=cli.probability, default=defaults.query_noise,
                     help="share of training rows that also get a copy with a noisy query (typos, spacing, case)")  # fmt: skip
    gen.add_argument("--cross_lingual", type=cli.number(int, 0, 3), default=defaults.cross_lingual,
                     help="training rows per concept pairing Korean and English: term->English, English->term, "
                          "English->Korean definition (0-3)")  # fmt: skip
    gen.add_argument("--general", type=cli.optional_input_file, default="data/general_ko_pairs.jsonl",
                     help="general-language {topic, query, positive} pairs to mix into training ('' to leave out)")  # fmt: skip
    gen.add_argument("--general_share", type=cli.probability, default=defaults.general_share,
                     help="general-language training rows to add, as a share of the domain training rows (0 = none)")  # fmt: skip
    gen.add_argument("--seed", type=int, default=defaults.seed)
    out = parser.add_argument_group("split and outputs")
    out.add_argument("--split", choices=["concept", "row"], default=defaults.split,
                     help="concept: test concepts never appear in train (default); row: naive row-level split")  # fmt: skip
    out.add_argument("--test_split", type=cli.number(float, 0, 1, open_low=True, open_high=True),
                     default=defaults.test_split, help="share of concepts (or rows) held out for the test split")  # fmt: skip
    out.add_argument("--output_dir", type=cli.output_path, default=Path("data"),
                     help="folder of the four output files (replaced together)")  # fmt: skip
    return parser


def parse_args(argv: list[str] | None = None):
    """The parsed flags (input and output paths) and the generation config."""
    args = build_parser().parse_args(argv)
    if not (args.glossary or args.terms or args.acronyms):
        raise cli.UsageError("give at least one of --glossary, --terms, --acronyms")
    config = SynthConfig(**{f.name: getattr(args, f.name) for f in dataclasses.fields(SynthConfig)})
    return args, config


@cli.entry_point
def main(argv: list[str] | None = None) -> int:
    args, config = parse_args(argv)
    domain = load_domain(args.templates)
    concepts = load_concepts(args.glossary, args.terms, args.acronyms, domain)
    general = read_jsonl(args.general, GeneralPair) if args.general and config.general_share > 0 else None
    data = build_dataset(concepts, config, domain, general)
    write_jsonl_files(
        args.output_dir,
        {
            "train.jsonl": data.train,
            "test.jsonl": data.test,
            "corpus_train.jsonl": data.corpus_train,
            "corpus_test.jsonl": data.corpus_test,
        },
    )
    print(
        f"Synthesized {len(concepts)} {domain.name} concepts ({args.split} split, seed {args.seed}) "
        f"into {args.output_dir}/:"
    )
    print(summary(data, domain))
    if data.generic:
        names = ", ".join(c.term for c in data.generic[:10]) + (" ..." if len(data.generic) > 10 else "")
        print(
            f"warning: {len(data.generic)} concepts have no definition, so their passages are generic: {names}",
            file=sys.stderr,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
