"""An invented world of towns, companies and people, rendered as short documents.

Nothing here can be recalled from pre-training, so every answer must be searched for. The world is
generated from a fixed seed with Python's ``random.Random`` (stable across versions), so the corpus
and its questions are identical on every machine.

Relations: a town lies on a river in a province; a company was founded in a year by a person and
is headquartered in a town; a person was born in a town in a year and works for a company.

Question families (gold chain in brackets):

* ``world-1hop``: "In which town was <person> born?" [person]
* ``world-2hop``: "On which river lies the town where <person> was born?" [person, town];
  "Who founded the company that <person> works for?" [person, company]
* ``world-3hop``: "On which river lies the birthplace of the founder of <company>?"
  [company, founder, town]; "In which province is the headquarters of the company that <person>
  works for?" [person, company, town]
"""

from __future__ import annotations

import functools
import random
from dataclasses import dataclass

from agentrl_envs.search.corpus import Document
from agentrl_envs.search.questions import Hop, Question

_SEED = 7
N_TOWNS, N_COMPANIES, N_PEOPLE = 40, 60, 160
_ONSETS = [
    "b",
    "br",
    "d",
    "dr",
    "f",
    "g",
    "gr",
    "h",
    "k",
    "kr",
    "l",
    "m",
    "n",
    "p",
    "r",
    "s",
    "st",
    "t",
    "th",
    "v",
    "z",
]
_VOWELS = ["a", "e", "i", "o", "u", "ae", "ei", "ou"]
_CODAS = ["", "n", "r", "l", "s", "th", "m", "k", "nd", "rn"]
_TOWN_SUFFIXES = ["ford", "holm", "wick", "stad", "mere", "burg", "dale", "port"]
_INDUSTRIES = [
    "textiles",
    "shipbuilding",
    "glassware",
    "software",
    "brewing",
    "mining",
    "optics",
    "publishing",
]
_COMPANY_SUFFIXES = {
    "textiles": "Mills",
    "shipbuilding": "Yards",
    "glassware": "Glassworks",
    "software": "Systems",
    "brewing": "Breweries",
    "mining": "Mining",
    "optics": "Optics",
    "publishing": "Press",
}
_OCCUPATIONS = [
    "engineer",
    "chemist",
    "accountant",
    "designer",
    "geologist",
    "translator",
    "pilot",
    "architect",
]


@dataclass(frozen=True)
class Town:
    name: str
    province: str
    river: str
    founded: int


@dataclass(frozen=True)
class Company:
    name: str
    industry: str
    founded: int
    founder: str
    town: str


@dataclass(frozen=True)
class Person:
    name: str
    born: int
    town: str
    occupation: str
    employer: str


@dataclass(frozen=True)
class World:
    towns: dict[str, Town]
    companies: dict[str, Company]
    people: dict[str, Person]


def _word(rng: random.Random, syllables: int) -> str:
    return "".join(
        rng.choice(_ONSETS) + rng.choice(_VOWELS) + rng.choice(_CODAS) for _ in range(syllables)
    ).capitalize()


def _unique(rng: random.Random, make, taken: set[str]) -> str:
    while True:
        name = make()
        if name.lower() not in taken:
            taken.add(name.lower())
            return name


@functools.cache
def generate() -> World:
    rng = random.Random(_SEED)
    taken: set[str] = set()
    provinces = [_unique(rng, lambda: _word(rng, 2), taken) for _ in range(8)]
    rivers = [_unique(rng, lambda: _word(rng, 2), taken) + " River" for _ in range(15)]
    towns = {}
    for _ in range(N_TOWNS):
        name = _unique(rng, lambda: _word(rng, 1) + rng.choice(_TOWN_SUFFIXES), taken)
        towns[name] = Town(name, rng.choice(provinces), rng.choice(rivers), rng.randint(900, 1800))
    town_names = list(towns)
    people_names = [_unique(rng, lambda: f"{_word(rng, 2)} {_word(rng, 2)}", taken) for _ in range(N_PEOPLE)]
    companies = {}
    founders = rng.sample(people_names, N_COMPANIES)
    for founder in founders:
        industry = rng.choice(_INDUSTRIES)
        name = _unique(rng, lambda industry=industry: f"{_word(rng, 2)} {_COMPANY_SUFFIXES[industry]}", taken)
        companies[name] = Company(name, industry, rng.randint(1850, 2015), founder, rng.choice(town_names))
    company_names = list(companies)
    people = {
        name: Person(
            name,
            rng.randint(1820, 1995),
            rng.choice(town_names),
            rng.choice(_OCCUPATIONS),
            rng.choice(company_names),
        )
        for name in people_names
    }
    return World(towns, companies, people)


def indefinite(word: str) -> str:
    """``word`` with its indefinite article: "an optics", "a textiles" (every word here is spelt as said)."""
    return f"{'an' if word[0].lower() in 'aeiou' else 'a'} {word}"


def documents() -> list[Document]:
    world = generate()
    docs = []
    for t in world.towns.values():
        text = f"{t.name} is a town in the province of {t.province}, founded in {t.founded}. It lies on the {t.river}."
        docs.append(Document(id=f"world/town/{t.name}", title=t.name, text=text, source="world"))
    for c in world.companies.values():
        text = (
            f"{c.name} is {indefinite(c.industry)} company founded in {c.founded} by {c.founder}. "
            f"Its headquarters are in {c.town}."
        )
        docs.append(Document(id=f"world/company/{c.name}", title=c.name, text=text, source="world"))
    for p in world.people.values():
        text = f"{p.name} (born {p.born}) is {indefinite(p.occupation)} from {p.town}. {p.name} works for {p.employer}."
        docs.append(Document(id=f"world/person/{p.name}", title=p.name, text=text, source="world"))
    return docs


def questions() -> list[Question]:
    world = generate()
    out = []

    def hop(kind: str, name: str) -> Hop:
        return Hop(doc_id=f"world/{kind}/{name}", query=name)

    for p in world.people.values():
        company = world.companies[p.employer]
        out.append(
            Question(
                id=f"world-1hop/birthplace/{p.name}",
                question=f"In which town was {p.name} born?",
                answers=[p.town],
                chain=[hop("person", p.name)],
                kind="world-1hop",
            )
        )
        out.append(
            Question(
                id=f"world-2hop/river/{p.name}",
                question=f"On which river lies the town where {p.name} was born?",
                answers=[world.towns[p.town].river],
                chain=[hop("person", p.name), hop("town", p.town)],
                kind="world-2hop",
            )
        )
        out.append(
            Question(
                id=f"world-2hop/founder/{p.name}",
                question=f"Who founded the company that {p.name} works for?",
                answers=[company.founder],
                chain=[hop("person", p.name), hop("company", company.name)],
                kind="world-2hop",
            )
        )
        out.append(
            Question(
                id=f"world-3hop/province/{p.name}",
                question=f"In which province is the headquarters of the company that {p.name} works for?",
                answers=[world.towns[company.town].province],
                chain=[hop("person", p.name), hop("company", company.name), hop("town", company.town)],
                kind="world-3hop",
            )
        )
    for c in world.companies.values():
        founder = world.people[c.founder]
        out.append(
            Question(
                id=f"world-3hop/founder-river/{c.name}",
                question=f"On which river lies the birthplace of the founder of {c.name}?",
                answers=[world.towns[founder.town].river],
                chain=[hop("company", c.name), hop("person", founder.name), hop("town", founder.town)],
                kind="world-3hop",
            )
        )
    return out
