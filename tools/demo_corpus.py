"""The demo model's domain: digits, numbers, times and a few hundred common words in short
sentences, in lower case without punctuation, and the espeak-ng voices that speak them.

Only the standard library; `tools/train_demo_model.py` imports it. Everything is drawn from
seeded generators, so the same seed gives the same corpus, split and voices.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass


def words(text: str) -> list[str]:
    return text.split()


ONES = words("zero one two three four five six seven eight nine")
TEENS = words("ten eleven twelve thirteen fourteen fifteen sixteen seventeen eighteen nineteen")
TENS = words("_ _ twenty thirty forty fifty sixty seventy eighty ninety")

NOUNS = words("""apple bag ball bank bed bike bird boat book bottle box bread bridge bus cake car card
cat chair child city clock coat coffee cup day desk door dog egg eye face farm field fish floor
flower friend game garden girl glass hand hat head hill home horse hotel house key kitchen lake
letter light lunch man map market meeting minute money month morning mother night office page
paper park party pen phone picture plane plate room school sea shop shirt shoe song station
street sun table teacher ticket time tea town train tree water week window woman word year
doctor river road father brother sister team class lesson message number""")
PLURALS = {n: n + "s" for n in NOUNS}
PLURALS.update(
    {
        "box": "boxes",
        "bus": "buses",
        "child": "children",
        "city": "cities",
        "glass": "glasses",
        "man": "men",
        "woman": "women",
        "party": "parties",
        "fish": "fish",
        "class": "classes",
        "match": "matches",
    }
)
ADJECTIVES = words("""big small old new good bad hot cold warm cool long short red blue green yellow
black white brown happy quiet loud early late fast slow clean dark bright heavy light empty
full open closed young nice busy free""")
VERBS = words("""bring buy call carry clean close cook find fix help keep leave like meet move need
open paint pay play read see sell send show take teach tell use visit want wash watch write""")
NAMES = words("""anna ben david emma jack james kate lucy mark mary paul peter sam sarah tom""")
DAYS = words("monday tuesday wednesday thursday friday saturday sunday")
MONTHS = words("""january february march april may june july august september october november
december""")
PLACES = ["the station", "the office", "the park", "the market", "the bank", "the school",
          "the hotel", "the airport", "the library", "the hospital", "the kitchen", "the garden",
          "the river", "the city", "the shop", "home"]  # fmt: skip
PARTS = ["in the morning", "in the afternoon", "in the evening", "at night", "today",
         "tomorrow", "tonight", "next week", "this weekend"]  # fmt: skip
FILLERS = words("""the a and to of in on at for with from is it was we you they he she i my your our
this that there here very not can will please yes no now then about after before again all
some every more most many much only also just still""")

TEMPLATES = [
    "the train leaves at {time}",
    "the meeting starts at {time} {part}",
    "please call me at {time}",
    "please call {name} at {time} {part}",
    "my number is {digits}",
    "the code is {digits}",
    "room {digits}",
    "i need {count} {nouns}",
    "we have {count} {nouns} left",
    "there are {count} {adj} {nouns} on the table",
    "{name} has {count} {nouns}",
    "{name} will meet us at {place} at {time}",
    "can you {verb} the {adj} {noun} {part}",
    "please {verb} the {noun}",
    "please {verb} the {adj} {noun} to {place}",
    "i will {verb} the {noun} on {day}",
    "the {noun} is {adj}",
    "the {adj} {noun} is in the {noun2}",
    "it costs {number} dollars",
    "it is {number} miles to {place}",
    "the year is {year}",
    "we met on {day} the {ordinal} of {month}",
    "see you on {day} at {time}",
    "the shop opens at {time} and closes at {time2}",
    "{name} and {name2} went to {place} {part}",
    "do you want to {verb} the {noun}",
    "i saw {count} {nouns} at {place}",
    "the {noun} was {adj} and {adj2}",
    "it is {time} now",
    "wake me up at {time}",
    "{count} {adj} {nouns}",
    "{number}",
    "{digits}",
    "{time}",
    "page {number}",
    "{name} is {number} years old",
    "the flight is at {time} on {day}",
    "my birthday is in {month}",
    "add {number} and {number2}",
    "we need {count} more {nouns} for the {noun}",
]
ORDINALS = words("""first second third fourth fifth sixth seventh eighth ninth tenth eleventh twelfth
thirteenth fourteenth fifteenth twentieth""")


def number_words(n: int, rng: random.Random) -> str:
    """0 to 9999 in words; hundreds are said with or without "and", at random."""
    if n < 10:
        return ONES[n]
    if n < 20:
        return TEENS[n - 10]
    if n < 100:
        return TENS[n // 10] + ("" if n % 10 == 0 else " " + ONES[n % 10])
    if n < 1000:
        rest = n % 100
        head = ONES[n // 100] + " hundred"
        if rest == 0:
            return head
        return head + (" and " if rng.random() < 0.5 else " ") + number_words(rest, rng)
    rest = n % 1000
    head = number_words(n // 1000, rng) + " thousand"
    if rest == 0:
        return head
    joiner = " and " if rest < 100 and rng.random() < 0.5 else " "
    return head + joiner + number_words(rest, rng)


def time_words(rng: random.Random) -> str:
    hour = rng.randint(1, 12)
    minute = rng.choice([0, 5, 10, 15, 20, 25, 30, 40, 45, 50, rng.randint(1, 59)])
    style = rng.random()
    h = number_words(hour, rng)
    if minute == 0:
        return f"{h} o'clock" if style < 0.6 else h
    if style < 0.25 and minute in (15, 30, 45):
        nxt = number_words(hour % 12 + 1, rng)
        return {15: f"quarter past {h}", 30: f"half past {h}", 45: f"quarter to {nxt}"}[minute]
    if style < 0.35 and minute in (5, 10, 20, 25):
        return f"{number_words(minute, rng)} past {h}"
    if minute < 10:
        return f"{h} oh {ONES[minute]}"
    return f"{h} {number_words(minute, rng)}"


def digit_words(rng: random.Random) -> str:
    return " ".join(ONES[rng.randint(0, 9)] for _ in range(rng.randint(3, 7)))


def year_words(rng: random.Random) -> str:
    year = rng.randint(1950, 2039)
    if year >= 2000:
        return number_words(year, rng) if year < 2010 else "twenty " + number_words(year % 100, rng)
    return "nineteen " + number_words(year % 100, rng)


def sentence(rng: random.Random) -> str:
    """One sentence: a template with its slots filled (85%) or a short run of common words."""
    if rng.random() < 0.15:
        pool = NOUNS + ADJECTIVES + VERBS + FILLERS + ONES + NAMES + DAYS
        return " ".join(rng.choice(pool) for _ in range(rng.randint(3, 7)))
    noun, noun2 = rng.sample(NOUNS, 2)
    count = rng.randint(2, 99) if rng.random() < 0.7 else rng.randint(2, 9)
    slots = {
        "time": time_words(rng),
        "time2": time_words(rng),
        "part": rng.choice(PARTS),
        "name": rng.choice(NAMES),
        "name2": rng.choice(NAMES),
        "digits": digit_words(rng),
        "count": number_words(count, rng),
        "number": number_words(rng.choice([rng.randint(0, 99), rng.randint(100, 999), rng.randint(1000, 9999)]), rng),
        "number2": number_words(rng.randint(0, 999), rng),
        "noun": noun,
        "noun2": noun2,
        "nouns": PLURALS[rng.choice(NOUNS)],
        "adj": rng.choice(ADJECTIVES),
        "adj2": rng.choice(ADJECTIVES),
        "verb": rng.choice(VERBS),
        "place": rng.choice(PLACES),
        "day": rng.choice(DAYS),
        "month": rng.choice(MONTHS),
        "ordinal": rng.choice(ORDINALS),
        "year": year_words(rng),
    }  # fmt: skip
    return rng.choice(TEMPLATES).format(**slots)


def split_of(text: str) -> str:
    """train / val / test, from a hash of the sentence: a held-out sentence is never trained on."""
    bucket = int(hashlib.sha256(text.encode()).hexdigest()[:8], 16) % 100
    return "train" if bucket < 80 else "val" if bucket < 90 else "test"


@dataclass(frozen=True)
class Rarity:
    """Words kept rare in the training split: each in at most `limit` training sentences
    (the rare-word benchmark's corpus). Other splits and the draws themselves are unchanged."""

    words: frozenset[str] = frozenset()
    limit: int = 5

    def admits(self, text: str, counts: dict[str, int]) -> bool:
        """Whether a training sentence fits under the limits; counts it if it does."""
        hits = self.words.intersection(text.split())
        if any(counts.get(w, 0) >= self.limit for w in hits):
            return False
        for w in hits:
            counts[w] = counts.get(w, 0) + 1
        return True


def sentences(
    split: str,
    count: int,
    seed: int,
    exclude: frozenset[str] = frozenset(),
    rarity: Rarity = Rarity(),
) -> list[str]:
    """`count` distinct sentences of one split (short single words may repeat in train)."""
    rng = random.Random(f"{seed}-{split}")
    out: list[str] = []
    seen: set[str] = set()
    rare_counts: dict[str, int] = {}
    while len(out) < count:
        text = sentence(rng)
        if split_of(text) != split or text in exclude:
            continue
        if text in seen and (split != "train" or len(text.split()) > 3):
            continue
        if split == "train" and rarity.words and not rarity.admits(text, rare_counts):
            continue
        seen.add(text)
        out.append(text)
    return out


# ----------------------------------------------------------------------------- voices

# espeak-ng language voices (accents) and voice variants (`-v en-us+m3`). Test voices use
# variants never heard in training or validation, and two accents never heard in training.
TRAIN_ACCENTS = ["en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-029", "en-gb-x-gbclan"]
TEST_ACCENTS = ["en-us-nyc", "en-gb-x-gbcwmd", "en-us", "en-gb"]
TRAIN_VARIANTS = ["", "m1", "m2", "m3", "m4", "m6", "f1", "f2", "f3", "klatt", "klatt3",
                  "klatt4", "paul", "rob", "steph", "linda", "max", "edward"]  # fmt: skip
VAL_VARIANTS = ["m8", "f4"]
TEST_VARIANTS = ["m7", "f5", "klatt2", "quincy"]


@dataclass(frozen=True)
class Utterance:
    """One clip to synthesise: the text, the espeak-ng voice and settings, the noise."""

    name: str
    text: str
    voice: str
    speed: int  # words per minute
    pitch: int  # 0-99
    gap: int  # extra pause between words, in 10 ms units
    snr_db: float | None  # white noise at this signal-to-noise ratio, or none
    gain_db: float
    lead: float  # seconds of quiet before and after
    tail: float
    seed: int


def voice_name(accent: str, variant: str) -> str:
    return accent + (f"+{variant}" if variant else "")


def utterances(split: str, texts: list[str], seed: int) -> list[Utterance]:
    rng = random.Random(f"{seed}-{split}-voices")
    accents = TRAIN_ACCENTS if split != "test" else TEST_ACCENTS
    variants = {"train": TRAIN_VARIANTS, "val": TRAIN_VARIANTS + VAL_VARIANTS,
                "test": TEST_VARIANTS}[split]  # fmt: skip
    out = []
    for i, text in enumerate(texts):
        out.append(
            Utterance(
                name=f"{split}-{i:05d}",
                text=text,
                voice=voice_name(rng.choice(accents), rng.choice(variants)),
                speed=rng.randint(125, 205),
                pitch=rng.randint(25, 75),
                gap=rng.choice([0, 0, 0, 1, 2, 4]),
                snr_db=None if rng.random() < 0.2 else rng.uniform(18.0, 40.0),
                gain_db=rng.uniform(-12.0, 0.0),
                lead=rng.uniform(0.05, 0.25),
                tail=rng.uniform(0.05, 0.25),
                seed=rng.randrange(2**31),
            )
        )
    return out
