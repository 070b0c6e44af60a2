"""Questions with gold answers and gold document chains, and the task set built from them.

A :class:`Question` carries ``answers`` (any of them scores EM = 1) and ``chain``: the documents a
searcher must read, in order, each with the ``query`` that finds it (the oracle issues exactly
these). The last hop's document (or, for comparisons, one of the hops) contains the answer.

Families (``kind``), all answerable from the corpus:

* ``wiki-identify`` (1 hop): "Which subject is described as '<short description>'?" → the
  article title, over Wikipedia descriptions that are unique in the corpus and that find their
  article in BM25's top :data:`REACH_K` when searched as they are (97.7% do; the rest are dropped
  so that every question is answerable — the kept ids are cached on disk per corpus).
* ``country-*`` (2–3 hops, :mod:`.countries`) and ``world-*`` (1–3 hops, :mod:`.world`).
* ``handwritten`` (1–2 hops): a fixed evaluation set written by hand over the Wikipedia
  summaries (``data/handwritten.jsonl``); always in the ``test`` split.

Generated questions are split train/test by a hash of their id (fixed, seed-independent).
``wiki-identify`` is a *verbatim* family — the question quotes the description that finds its
article, so searching the question as it is and answering Doc 1's title solves most of it — so
only :data:`TEST_WEIGHT` of the test fraction of it goes to ``test`` (the rest trains): multi-hop
and non-verbatim questions make up most of the test split.
"""

from __future__ import annotations

import functools
import json
import os
from collections import Counter
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from agentrl.env import EnvOptionError, Task, TaskSet
from agentrl.env.taskfile import field_error, read_jsonl
from agentrl.env.tasks import hash_split

HANDWRITTEN_FILE = Path(__file__).parent / "data" / "handwritten.jsonl"
SOURCES = ("wiki", "countries", "world", "handwritten")
REACH_K = 3
# Share of the test fraction each kind sends to `test` (1 when absent). hash_split is monotone in
# the fraction, so a lower weight only moves questions from test to train, never the other way.
TEST_WEIGHT = {"wiki-identify": 0.05}


class Hop(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    doc_id: str
    query: str


class Question(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    question: str
    answers: list[str] = Field(min_length=1)
    chain: list[Hop]  # empty only for a user's question without a gold chain
    kind: str

    @property
    def hops(self) -> int:
        return len(self.chain)


def strip_parenthetical(title: str) -> str:
    """``"Titan (moon)"`` → ``"Titan"``: both are accepted answers."""
    return title.split(" (")[0].strip() if title.endswith(")") and " (" in title else title


def answer_variants(title: str) -> list[str]:
    short = strip_parenthetical(title)
    return [title] if short == title else [title, short]


def wiki_questions() -> list[Question]:
    """Entity identification questions whose description retrieves the article (cached filter)."""
    from agentrl_envs.search.corpus import cache_dir
    from agentrl_envs.search.retrieval import shared_retriever

    candidates = wiki_candidates()
    retriever = shared_retriever()
    path = cache_dir() / f"wiki-reachable-{retriever.corpus.fingerprint[:16]}-k{REACH_K}.json"
    try:
        keep = set(json.loads(path.read_text()))
    except (OSError, ValueError):
        hits = retriever.search_batch([q.chain[0].query for q in candidates], REACH_K)
        keep = {q.id for q, row in zip(candidates, hits) if q.chain[0].doc_id in {h.doc.id for h in row}}
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(sorted(keep)))
        os.replace(tmp, path)
    return [q for q in candidates if q.id in keep]


def wiki_candidates() -> list[Question]:
    """Every unique, specific Wikipedia description as a question (before the reachability filter)."""
    from agentrl_envs.search.corpus import wiki_descriptions

    descriptions = wiki_descriptions()
    counts = Counter(d.lower() for d in descriptions.values() if d)
    out = []
    for title, description in descriptions.items():
        # Unique descriptions only, and long enough to identify something (not "Country").
        if not description or counts[description.lower()] > 1 or len(description.split()) < 3:
            continue
        out.append(
            Question(
                id=f"wiki-identify/{title}",
                question=f"Which subject is described as '{description}'?",
                answers=answer_variants(title),
                chain=[Hop(doc_id=f"wiki/{title}", query=description)],
                kind="wiki-identify",
            )
        )
    return out


def handwritten_questions() -> list[Question]:
    with open(HANDWRITTEN_FILE, encoding="utf-8") as f:
        return [Question(kind="handwritten", **json.loads(line)) for line in f if line.strip()]


@functools.cache
def questions_by_source(source: str) -> tuple[Question, ...]:
    from agentrl_envs.search import countries, world

    builders = {
        "wiki": wiki_questions,
        "countries": countries.questions,
        "world": world.questions,
        "handwritten": handwritten_questions,
    }
    if source not in builders:
        raise ValueError(f"unknown question source {source!r}; choose from {', '.join(SOURCES)}")
    return tuple(builders[source]())


@functools.cache
def build_task_set(sources: tuple[str, ...], test_fraction: float) -> TaskSet:
    """Tasks of the chosen sources; hand-written ones are always ``test``."""
    tasks = []
    for source in sources:
        for q in questions_by_source(source):
            fraction = test_fraction * TEST_WEIGHT.get(q.kind, 1.0)
            split = "test" if source == "handwritten" else hash_split(q.id, fraction)
            tasks.append(Task(id=q.id, split=split, data=q.model_dump()))
    return TaskSet(tasks)


# ---------------------------------------------------------------------- your own tasks and corpus
Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]


class QuestionLine(BaseModel):
    """One line of a ``tasks=PATH`` file: a question and its gold answers.

    ``{"question": "Who founded Acme?", "answers": ["Ada Lovelace"]}`` is enough. Optional:
    ``id`` (default ``"<file stem>/<line>"``), ``chain`` — the gold documents in reading order,
    each ``{"doc_id": ..., "query": ...}`` with a query that finds it (the oracle searches them;
    without a chain it answers at once) — ``kind`` (a family name for per-family reports,
    default ``"custom"``) and ``split`` (default: a hash of the id, as for the bundled questions).
    """

    model_config = ConfigDict(extra="forbid")

    question: Text
    answers: list[Text] = Field(min_length=1)
    id: Text | None = None
    chain: list[Hop] = []
    kind: Text = "custom"
    split: Literal["train", "dev", "test"] | None = None


class DocumentLine(BaseModel):
    """One line of a ``corpus=PATH`` file: ``{"id": ..., "title": ..., "text": ...}``."""

    model_config = ConfigDict(extra="forbid")

    id: Text
    title: Text
    text: str


def load_corpus_file(path: str):
    """The documents of a ``corpus=PATH`` JSONL file (they replace the bundled corpus)."""
    from agentrl_envs.search.corpus import Corpus, Document

    lines = read_jsonl(path, DocumentLine, what="corpus", key=lambda doc: doc.id, noun="document")
    return Corpus([Document(id=d.id, title=d.title, text=d.text, source="user") for _, _, d, _ in lines])


def load_question_file(path: str, test_fraction: float, corpus) -> TaskSet:
    """The questions of a ``tasks=PATH`` file; chains are checked against ``corpus``."""
    tasks = []
    for line in read_jsonl(path, QuestionLine, key=lambda item: item.id, noun="question"):
        item = line.item
        for i, hop in enumerate(item.chain):
            if hop.doc_id not in corpus:
                raise field_error(line.where, f"chain.{i}.doc_id", f"no document {hop.doc_id!r} in the corpus")
        question = Question(
            id=line.key,
            question=item.question,
            answers=item.answers,
            chain=item.chain,
            kind=item.kind,
        )
        split = item.split or hash_split(question.id, test_fraction)
        tasks.append(Task(id=question.id, split=split, data=question.model_dump()))
    return TaskSet(tasks)


def check_sources(tasks: str | None, corpus: str | None) -> None:
    if corpus is not None and tasks is None:
        raise EnvOptionError("corpus: needs tasks=PATH too (the bundled questions are about the bundled corpus)")
