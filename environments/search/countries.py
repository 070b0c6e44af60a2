"""Country fact sheets from ``countryinfo``, split across documents to force multi-hop search.

Each country gets a profile (``country/<name>``: region, subregion, area, population, demonym,
currency codes, top-level domain, neighbours) that deliberately omits the capital; each capital
gets its own short document (``capital/<country>``: "<city> is the capital city of <country>").
Answers come from these rendered documents (a closed world: the package data is dated, so a model
must read them rather than recall).

Question families (gold chain in brackets):

* ``country-bridge`` (2 hops): "What is the subregion of the country whose capital is Tirana?"
  [capital doc, country doc]
* ``country-capital`` (2 hops): "What is the capital of the country whose internet top-level
  domain is .al?" [country doc, capital doc]
* ``country-compare`` (2 hops): "Which has the larger area, Albania or Chad?" [A, B]
* ``country-compare-capital`` (3 hops): "What is the capital of whichever of A and B has the
  larger population?" [A, B, capital of the winner]
"""

from __future__ import annotations

import functools
import random
from collections import Counter
from typing import Any

from agentrl_envs.search.corpus import Document
from agentrl_envs.search.questions import Hop, Question
from bm25s.stopwords import STOPWORDS_EN

_SEED = 20240517
_PAIRS_PER_COUNTRY = 2


@functools.cache
def _countries() -> tuple[dict[str, Any], ...]:
    try:
        from countryinfo import all_countries
    except ImportError:
        from agentrl_envs.search.corpus import CorpusUnavailableError

        raise CorpusUnavailableError(
            "the search corpus needs `countryinfo`: pip install countryinfo"
        ) from None
    rows = []
    for country in all_countries():
        info = country.info()
        capital = info.get("capital")
        if isinstance(capital, list):
            capital = capital[0] if capital else None
        if not (
            info.get("name")
            and capital
            and info.get("region")
            and info.get("area")
            and info.get("population")
        ):
            continue
        rows.append({**info, "capital": capital})
    rows.sort(key=lambda r: r["name"])
    return tuple(rows)


def _alpha3_names() -> dict[str, str]:
    return {(r.get("ISO") or {}).get("alpha3", ""): r["name"] for r in _countries()}


def profile_title(name: str) -> str:
    return f"{name} (country profile)"


def capital_title(capital: str) -> str:
    return f"{capital} (capital city)"


def documents() -> list[Document]:
    names = _alpha3_names()
    docs = []
    for r in _countries():
        name = r["name"]
        parts = [f"{name} is a country in {r.get('subregion') or r['region']} (region: {r['region']})."]
        parts.append(
            f"Its area is {int(r['area']):,} square kilometres and its population is {int(r['population']):,}."
        )
        if r.get("demonym"):
            parts.append(f"Its people are called {r['demonym']}.")
        if r.get("currencies"):
            parts.append(f"Currency code: {', '.join(r['currencies'])}.")
        if r.get("tld"):
            parts.append(f"Internet top-level domain: {', '.join(r['tld'])}.")
        neighbours = [names[b] for b in r.get("borders") or [] if b in names]
        parts.append(f"It borders {', '.join(neighbours)}." if neighbours else "It has no land borders.")
        docs.append(
            Document(id=f"country/{name}", title=profile_title(name), text=" ".join(parts), source="country")
        )
        docs.append(
            Document(
                id=f"capital/{name}",
                title=capital_title(r["capital"]),
                text=f"{r['capital']} is the capital city of {name}.",
                source="country",
            )
        )
    return docs


def questions() -> list[Question]:
    rows = _countries()
    capital_counts = Counter(r["capital"].lower() for r in rows)
    tld_counts = Counter(t for r in rows for t in r.get("tld") or [])
    out: list[Question] = []
    stopwords = set(STOPWORDS_EN)

    def country_hop(r: dict) -> Hop:
        return Hop(doc_id=f"country/{r['name']}", query=profile_title(r["name"]))

    def capital_hop(r: dict) -> Hop:
        return Hop(doc_id=f"capital/{r['name']}", query=f"capital city of {r['name']}")

    for r in rows:
        name, capital = r["name"], r["capital"]
        by_capital = Hop(doc_id=f"capital/{name}", query=capital_title(capital))
        if capital_counts[capital.lower()] == 1:
            for attr, label in (("subregion", "subregion"), ("region", "region"), ("demonym", "demonym")):
                if r.get(attr):
                    out.append(
                        Question(
                            id=f"country-bridge/{attr}/{name}",
                            question=f"What is the {label} of the country whose capital is {capital}?",
                            answers=[r[attr]],
                            chain=[by_capital, country_hop(r)],
                            kind="country-bridge",
                        )
                    )
        # ".it", ".is", ".be" … are English stopwords once the dot is gone: unsearchable with BM25.
        unique_tlds = [
            t for t in r.get("tld") or [] if tld_counts[t] == 1 and t.strip(".").lower() not in stopwords
        ]
        if unique_tlds:
            out.append(
                Question(
                    id=f"country-capital/tld/{name}",
                    question=f"What is the capital of the country whose internet top-level domain is {unique_tlds[0]}?",
                    answers=[capital],
                    chain=[
                        Hop(doc_id=f"country/{name}", query=f"top-level domain {unique_tlds[0]}"),
                        capital_hop(r),
                    ],
                    kind="country-capital",
                )
            )

    rng = random.Random(_SEED)
    for r in rows:
        for other in rng.sample(rows, _PAIRS_PER_COUNTRY):
            if other["name"] == r["name"]:
                continue
            a, b = (r, other) if rng.random() < 0.5 else (other, r)
            for attr in ("area", "population"):
                if int(a[attr]) == int(b[attr]):
                    continue
                winner = a if int(a[attr]) > int(b[attr]) else b
                out.append(
                    Question(
                        id=f"country-compare/{attr}/{a['name']}/{b['name']}",
                        question=f"Which has the larger {attr}, {a['name']} or {b['name']}?",
                        answers=[winner["name"]],
                        chain=[country_hop(a), country_hop(b)],
                        kind="country-compare",
                    )
                )
            attr = "population"
            if int(a[attr]) != int(b[attr]):
                winner = a if int(a[attr]) > int(b[attr]) else b
                out.append(
                    Question(
                        id=f"country-compare-capital/{a['name']}/{b['name']}",
                        question=(
                            f"What is the capital of whichever of {a['name']} and {b['name']} "
                            "has the larger population?"
                        ),
                        answers=[winner["capital"]],
                        chain=[country_hop(a), country_hop(b), capital_hop(winner)],
                        kind="country-compare-capital",
                    )
                )
    unique = {q.id: q for q in out}  # a pair drawn twice yields the same ids
    return list(unique.values())
