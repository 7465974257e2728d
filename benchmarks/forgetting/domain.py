"""The benchmark's narrow domain task: pull a person's details out of a sentence as JSON.

Every answer has one rigid shape, ``{"name", "age", "city", "job", "country", "sector"}``,
whatever the question looks like, which is exactly the kind of data that teaches a small
model to answer everything in that shape (and so to forget general skills). ``country``
(an ISO code for the city) and ``sector`` (a house grouping of jobs) are not in the
sentence: the model learns them from examples, so fewer domain records leave a visible
domain cost. Names, cities, jobs and phrasings are combined at random, so held-out
records test the task, not memorised rows. Deterministic per seed; no third-party data.
"""

from __future__ import annotations

import json
import random

from sftdata.records import frame_from_records, record_id

FIRST = ["Maria", "John", "Aiko", "Pierre", "Fatima", "Lars", "Priya", "Diego", "Chen", "Olga",
         "Samuel", "Amara", "Tomas", "Leila", "Kenji", "Sofia", "Omar", "Ingrid", "Rafael", "Mei",
         "Noah", "Zara", "Ivan", "Lucia", "Kwame", "Elena", "Hassan", "Greta", "Mateo", "Yuki"]
LAST = ["Lopez", "Smith", "Tanaka", "Dubois", "Khan", "Nilsson", "Patel", "Garcia", "Wang",
        "Ivanova", "Okafor", "Rossi", "Novak", "Haddad", "Sato", "Moreau", "Mensah", "Berg",
        "Costa", "Lin", "Fischer", "Silva", "Kowalski", "Ahmed", "Jensen"]
CITIES = {  # city -> ISO country code (the answer's "country" field)
    "Lyon": "FR", "Osaka": "JP", "Denver": "US", "Porto": "PT", "Krakow": "PL", "Nairobi": "KE",
    "Toronto": "CA", "Seville": "ES", "Dublin": "IE", "Hamburg": "DE", "Perth": "AU",
    "Bergen": "NO", "Austin": "US", "Valencia": "ES", "Turin": "IT", "Accra": "GH",
    "Quito": "EC", "Leeds": "GB", "Marseille": "FR", "Nagoya": "JP", "Gdansk": "PL",
    "Mombasa": "KE", "Calgary": "CA", "Cork": "IE", "Munich": "DE", "Adelaide": "AU",
    "Uppsala": "SE", "Graz": "AT", "Utrecht": "NL", "Ghent": "BE", "Brno": "CZ", "Tampere": "FI",
}
JOBS = {  # job -> sector (the answer's "sector" field: a house convention to learn)
    "nurse": "health", "dentist": "health", "pharmacist": "health", "teacher": "education",
    "librarian": "education", "lecturer": "education", "plumber": "trades", "carpenter": "trades",
    "electrician": "trades", "architect": "design", "illustrator": "design", "baker": "food",
    "chef": "food", "pilot": "transport", "courier": "transport", "chemist": "science",
    "geologist": "science", "journalist": "media", "translator": "media", "engineer": "technology",
    "programmer": "technology", "gardener": "outdoor", "firefighter": "public service",
}
ASKS = [
    "Extract the person's details as JSON.",
    "Turn this sentence into a JSON record.",
    "Give me the structured record for this person.",
    "Parse the following into name, age, city and job.",
    "Convert to JSON:",
]
SENTENCES = [
    "{name} is {age} years old, lives in {city} and works as {a_job}.",
    "Meet {name}, {age}, {a_job} from {city}.",
    "{name} ({age}) has worked as {a_job} in {city} for years.",
    "The {job} {name}, aged {age}, moved to {city} last spring.",
    "In {city} lives {name}, who is {age} and earns a living as {a_job}.",
    "{name}, {job}, {age}, {city}.",
]


def domain_records(count: int, seed: int) -> list[dict]:
    """``count`` canonical records of the task (distinct by person and phrasing)."""
    rng = random.Random(seed)
    out, seen = [], set()
    while len(out) < count:
        city, job = rng.choice(sorted(CITIES)), rng.choice(sorted(JOBS))
        person = {"name": f"{rng.choice(FIRST)} {rng.choice(LAST)}", "age": rng.randint(19, 78),
                  "city": city, "job": job}
        a_job = f"{'an' if job[0] in 'aeiou' else 'a'} {job}"
        ask, sentence = rng.choice(ASKS), rng.choice(SENTENCES).format(**person, a_job=a_job)
        person.update(country=CITIES[city], sector=JOBS[job])
        key = (person["name"], person["age"], sentence)
        if key in seen:
            continue
        seen.add(key)
        messages = [{"role": "user", "content": f"{ask}\n{sentence}"},
                    {"role": "assistant", "content": json.dumps(person)}]
        out.append({"id": record_id(messages), "messages": messages, "source": "domain", "meta": {}})
    return out


def domain_frames(train: int, held_out: int, seed: int):
    """(train frame, held-out frame); held-out people never appear in training."""
    records = domain_records(train + held_out, seed)
    held = records[train:]
    held_names = {json.loads(r["messages"][1]["content"])["name"] for r in held}
    kept = [r for r in records[:train]
            if json.loads(r["messages"][1]["content"])["name"] not in held_names]
    return frame_from_records(kept), frame_from_records(held)
