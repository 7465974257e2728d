"""Write sftdata/data/general_tasks.jsonl: a small general instruction set made here.

Every pair comes from templates and facts written in this file (arithmetic, unit
conversion, word manipulation, capitals, definitions, antonyms, rewriting...), so the
answers are correct by construction and no third-party data is shipped. It is the demo's
general data and the forgetting benchmark's general held-out set.

    python benchmarks/forgetting/make_general_tasks.py   # rewrites the file (deterministic)
"""

from __future__ import annotations

import json
import random
from pathlib import Path

OUT = Path(__file__).resolve().parents[2] / "sftdata" / "data" / "general_tasks.jsonl"

CAPITALS = {
    "France": "Paris", "Germany": "Berlin", "Italy": "Rome", "Spain": "Madrid",
    "Portugal": "Lisbon", "Japan": "Tokyo", "China": "Beijing", "India": "New Delhi",
    "Canada": "Ottawa", "Australia": "Canberra", "Brazil": "Brasília", "Argentina": "Buenos Aires",
    "Mexico": "Mexico City", "Egypt": "Cairo", "Kenya": "Nairobi", "Russia": "Moscow",
    "the United Kingdom": "London", "Ireland": "Dublin", "Norway": "Oslo", "Sweden": "Stockholm",
    "Finland": "Helsinki", "Denmark": "Copenhagen", "Poland": "Warsaw", "Greece": "Athens",
    "Turkey": "Ankara", "the Netherlands": "Amsterdam", "Belgium": "Brussels", "Austria": "Vienna",
    "Hungary": "Budapest", "the Czech Republic": "Prague", "South Korea": "Seoul",
    "Thailand": "Bangkok", "Vietnam": "Hanoi", "Indonesia": "Jakarta", "Peru": "Lima",
    "Chile": "Santiago", "Colombia": "Bogotá", "Nigeria": "Abuja", "Morocco": "Rabat",
    "New Zealand": "Wellington", "Iceland": "Reykjavik", "Cuba": "Havana",
}
DEFINITIONS = {
    "photosynthesis": "the process by which plants use sunlight, water and carbon dioxide to make sugar and release oxygen",
    "democracy": "a system of government in which citizens choose their leaders by voting",
    "metaphor": "a figure of speech that describes something by saying it is something else",
    "volcano": "an opening in the Earth's crust through which molten rock, ash and gases escape",
    "habitat": "the natural home or environment of an animal, plant or other organism",
    "fraction": "a number that represents a part of a whole, written as one number over another",
    "glacier": "a large, slow-moving mass of ice formed from compacted snow",
    "budget": "a plan for how much money will be earned and spent over a period of time",
    "evaporation": "the process in which a liquid turns into a gas, usually when it is heated",
    "synonym": "a word that means the same or nearly the same as another word",
    "antonym": "a word that means the opposite of another word",
    "peninsula": "a piece of land surrounded by water on three sides",
    "algorithm": "a step-by-step procedure for solving a problem or doing a task",
    "gravity": "the force that pulls objects toward each other, such as toward the Earth",
    "recipe": "a set of instructions for preparing a dish, with a list of ingredients",
    "orbit": "the curved path an object follows around a star, planet or moon",
    "vaccine": "a substance that trains the immune system to recognise and fight a disease",
    "adjective": "a word that describes a noun, such as big, red or happy",
    "verb": "a word that describes an action, state or occurrence, such as run or be",
    "noun": "a word that names a person, place, thing or idea",
    "mammal": "a warm-blooded animal that has hair and feeds its young with milk",
    "island": "a piece of land completely surrounded by water",
    "thermometer": "an instrument for measuring temperature",
    "continent": "one of the Earth's seven large land masses, such as Africa or Asia",
    "ecosystem": "a community of living things interacting with each other and their environment",
    "inflation": "a general rise in prices over time, which lowers what money can buy",
    "password": "a secret string of characters used to prove who you are to a computer system",
    "telescope": "an instrument that makes distant objects look closer and larger",
    "haiku": "a short Japanese poem of three lines with five, seven and five syllables",
    "prime number": "a whole number greater than 1 whose only divisors are 1 and itself",
}
MASS_NOUNS = {"photosynthesis", "democracy", "gravity", "inflation", "evaporation"}
ANTONYMS = {
    "hot": "cold", "big": "small", "fast": "slow", "happy": "sad", "early": "late",
    "open": "closed", "light": "dark", "up": "down", "full": "empty", "strong": "weak",
    "rich": "poor", "old": "young", "hard": "soft", "high": "low", "win": "lose",
    "begin": "end", "buy": "sell", "push": "pull", "wet": "dry", "thick": "thin",
    "loud": "quiet", "near": "far", "always": "never", "above": "below", "remember": "forget",
}
YOUNG = {
    "cat": "kitten", "dog": "puppy", "cow": "calf", "horse": "foal", "sheep": "lamb",
    "duck": "duckling", "frog": "tadpole", "kangaroo": "joey", "bear": "cub", "deer": "fawn",
    "swan": "cygnet", "goose": "gosling", "pig": "piglet", "owl": "owlet", "hen": "chick",
}
ELEMENTS = {
    "hydrogen": "H", "oxygen": "O", "carbon": "C", "nitrogen": "N", "iron": "Fe", "gold": "Au",
    "silver": "Ag", "sodium": "Na", "potassium": "K", "copper": "Cu", "helium": "He",
    "calcium": "Ca", "chlorine": "Cl", "lead": "Pb", "zinc": "Zn", "sulfur": "S",
}
UNITS = [  # (from, to, factor)
    ("kilometers", "meters", 1000), ("meters", "centimeters", 100), ("kilograms", "grams", 1000),
    ("hours", "minutes", 60), ("minutes", "seconds", 60), ("liters", "milliliters", 1000),
    ("days", "hours", 24), ("feet", "inches", 12), ("yards", "feet", 3), ("weeks", "days", 7),
    ("centimeters", "millimeters", 10), ("dozens", "items", 12),
]
WORDS = ["garden", "planet", "silver", "window", "rocket", "yellow", "pencil", "orange",
         "castle", "bridge", "marble", "forest", "candle", "wonder", "harbor", "jungle",
         "copper", "basket", "mirror", "thunder", "lantern", "meadow", "puzzle", "violin"]
SENTENCES = [  # (present, past)
    ("She walks to school every day.", "She walked to school every day."),
    ("They play football in the park.", "They played football in the park."),
    ("I cook dinner for my family.", "I cooked dinner for my family."),
    ("He opens the window in the morning.", "He opened the window in the morning."),
    ("We watch a movie together.", "We watched a movie together."),
    ("The children laugh at the clown.", "The children laughed at the clown."),
    ("My brother cleans his room.", "My brother cleaned his room."),
    ("The dog barks at the mail carrier.", "The dog barked at the mail carrier."),
    ("You paint the fence blue.", "You painted the fence blue."),
    ("The students listen to the teacher.", "The students listened to the teacher."),
    ("It rains all afternoon.", "It rained all afternoon."),
    ("The baker bakes fresh bread.", "The baker baked fresh bread."),
]
DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]


def pair(instruction: str, output: str, input: str = "", category: str = "") -> dict:
    return {"instruction": instruction, "input": input, "output": output, "category": category}


def tagged(category: str, rows: list[dict]) -> list[dict]:
    """Set the ``category`` of rows (kept in each record's meta; the benchmark holds out
    whole categories so its general held-out set has templates training never saw)."""
    return [{**row, "category": category} for row in rows]


def arithmetic(rng: random.Random) -> list[dict]:
    out = []
    for _ in range(25):
        a, b = rng.randint(10, 99), rng.randint(10, 99)
        out.append(pair(f"What is {a} + {b}?", f"{a} + {b} = {a + b}."))
    for _ in range(20):
        a, b = sorted((rng.randint(10, 99), rng.randint(10, 99)), reverse=True)
        out.append(pair(f"Subtract {b} from {a}.", f"{a} - {b} = {a - b}."))
    for _ in range(20):
        a, b = rng.randint(2, 12), rng.randint(2, 12)
        out.append(pair(f"What is {a} times {b}?", f"{a} times {b} is {a * b}."))
    for _ in range(15):
        b, q = rng.randint(2, 9), rng.randint(2, 12)
        out.append(pair(f"Divide {b * q} by {b}.", f"{b * q} divided by {b} is {q}."))
    for _ in range(15):
        n = rng.randint(1, 200)
        out.append(pair(f"Is {n} even or odd?", f"{n} is {'even' if n % 2 == 0 else 'odd'}."))
    for _ in range(15):
        a, b = rng.sample(range(1, 1000), 2)
        out.append(pair(f"Which is larger, {a} or {b}?", f"{max(a, b)} is larger than {min(a, b)}."))
    return out


def conversions(rng: random.Random) -> list[dict]:
    out = []
    for _ in range(50):
        src, dst, factor = rng.choice(UNITS)
        n = rng.randint(2, 15)
        if src == "dozens":
            answer = f"{n} dozen is {n * factor} items, because a dozen is 12."
        else:
            one = "foot" if src == "feet" else src[:-1]
            answer = f"{n} {src} is {n * factor:,} {dst}, because 1 {one} equals {factor} {dst}."
        out.append(pair(f"Convert {n} {src} to {dst}.", answer))
    return out


def words(rng: random.Random) -> list[dict]:
    out = []
    for w in WORDS:
        out.append(pair("Reverse the letters of this word.", w[::-1], w))
        out.append(pair(f"How many letters are in the word \"{w}\"?", f"The word \"{w}\" has {len(w)} letters."))
        vowels = sum(c in "aeiou" for c in w)
        out.append(pair(f"Count the vowels in \"{w}\".", f"\"{w}\" has {vowels} vowel{'s' * (vowels != 1)}."))
    for _ in range(20):
        chosen = rng.sample(WORDS, 4)
        out.append(pair("Sort these words alphabetically.", ", ".join(sorted(chosen)), ", ".join(chosen)))
    for _ in range(15):
        nums = rng.sample(range(1, 100), 5)
        out.append(pair("Sort these numbers from smallest to largest.",
                        ", ".join(map(str, sorted(nums))), ", ".join(map(str, nums))))
    for w in rng.sample(WORDS, 12):
        out.append(pair("Write this word in capital letters.", w.upper(), w))
    return out


def facts(rng: random.Random) -> list[dict]:
    capitals, definitions, knowledge = [], [], []
    for country, capital in CAPITALS.items():
        capitals.append(pair(f"What is the capital of {country}?", f"The capital of {country} is {capital}."))
        capitals.append(pair(f"{capital} is the capital of which country?",
                             f"{capital} is the capital of {country}."))
    for term, meaning in DEFINITIONS.items():
        first = term.capitalize() if term in MASS_NOUNS else f"A{'n' * (term[0] in 'aeiou')} {term}"
        definitions.append(pair(f"Define the word \"{term}\".", f"{first} is {meaning}."))
        if term in MASS_NOUNS:
            definitions.append(pair(f"What is {term}? Answer in one sentence.", f"{term.capitalize()} is {meaning}."))
        else:
            article = "an" if term[0] in "aeiou" else "a"
            definitions.append(pair(f"What is {article} {term}? Answer in one sentence.",
                                    f"{article.capitalize()} {term} is {meaning}."))
    for word, opposite in ANTONYMS.items():
        definitions.append(pair(f"What is the opposite of \"{word}\"?", f"The opposite of \"{word}\" is \"{opposite}\"."))
    for animal, young in YOUNG.items():
        knowledge.append(pair(f"What is a baby {animal} called?", f"A baby {animal} is called a {young}."))
    for name, symbol in ELEMENTS.items():
        knowledge.append(pair(f"What is the chemical symbol for {name}?", f"The chemical symbol for {name} is {symbol}."))
    for i, day in enumerate(DAYS):
        knowledge.append(pair(f"What day comes after {day}?", f"The day after {day} is {DAYS[(i + 1) % 7]}."))
    return tagged("capitals", capitals) + tagged("vocabulary", definitions) + tagged("knowledge", knowledge)


def rewriting(rng: random.Random) -> list[dict]:
    out = []
    for present, past in SENTENCES:
        out.append(pair("Rewrite this sentence in the past tense.", past, present))
        out.append(pair("Rewrite this sentence so that every letter is lowercase.", present.lower(), present))
        words_ = present.rstrip(".").split()
        out.append(pair("How many words are in this sentence?",
                        f"The sentence has {len(words_)} words.", present))
    return out


def main() -> None:
    rng = random.Random(20261123)
    rows = (tagged("arithmetic", arithmetic(rng)) + tagged("conversion", conversions(rng))
            + tagged("words", words(rng)) + facts(rng) + tagged("rewriting", rewriting(rng)))
    unique = list({json.dumps(r, sort_keys=True): r for r in rows}.values())
    rng.shuffle(unique)
    OUT.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in unique), encoding="utf-8")
    print(f"wrote {len(unique)} tasks to {OUT}")


if __name__ == "__main__":
    main()
