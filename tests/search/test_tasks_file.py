"""Your own questions (tasks=PATH) and corpus (corpus=PATH) for SearchQA: schema and errors."""

import asyncio
import json

import pytest

import agentrl
from agentrl.env import EnvOptionError, aplay_episode, make_agent

DOCS = [
    {"id": "acme", "title": "Acme Corporation", "text": "Acme Corporation was founded by Ada Quill in Rivertown."},
    {"id": "rivertown", "title": "Rivertown", "text": "Rivertown lies on the Blue Snake river."},
]
QUESTIONS = [
    {
        "question": "Who founded Acme Corporation?",
        "answers": ["Ada Quill"],
        "chain": [{"doc_id": "acme", "query": "Acme Corporation founded"}],
        "split": "test",
    },
    {
        "question": "On which river lies the town where Acme Corporation was founded?",
        "answers": ["Blue Snake", "Blue Snake river"],
        "chain": [{"doc_id": "acme", "query": "Acme Corporation"}, {"doc_id": "rivertown", "query": "Rivertown river"}],
        "kind": "bridge",
        "id": "acme-river",
    },
]


def write(path, rows):
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n")
    return str(path)


def test_own_questions_over_own_corpus(tmp_path):
    tasks = write(tmp_path / "qa.jsonl", [QUESTIONS[0], "", QUESTIONS[1]])
    corpus = write(tmp_path / "docs.jsonl", DOCS)
    env = agentrl.make("agentrl/SearchQA-v0", tasks=tasks, corpus=corpus)
    assert [(t.id, t.data["kind"]) for t in env.tasks] == [("qa/1", "custom"), ("acme-river", "bridge")]
    assert env.tasks.get("qa/1").split == "test"  # pinned; acme-river's split is its id's hash
    for task in env.tasks:
        trajectory = asyncio.run(aplay_episode(env, make_agent("oracle", env), task_id=task.id))
        assert trajectory.success and set(env.retrieved) >= {h["doc_id"] for h in task.data["chain"]}
    env.reset(options={"task_id": "acme-river"})
    obs, *_ = env.step("<search>Rivertown</search>")
    assert obs.startswith("\n\n<information>Doc 1(Title: Rivertown) Rivertown lies on the Blue Snake river.")


def test_own_questions_over_the_bundled_corpus_and_no_chain(tmp_path):
    rows = [
        {"question": "Where was Henku born?", "answers": ["Somewhere"], "chain": [{"doc_id": "wiki/Titan (moon)", "query": "Titan moon"}]},
        {"question": "What is 2 + 2?", "answers": ["4"]},  # no chain: the oracle answers at once
    ]
    env = agentrl.make("agentrl/SearchQA-v0", tasks=write(tmp_path / "t.jsonl", rows))
    trajectory = asyncio.run(aplay_episode(env, make_agent("oracle", env), task_id="t/2"))
    assert trajectory.success and env.retrieved == [] and env.turn == 1


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([QUESTIONS[0], "{not json"], r"line 2: not valid JSON"),
        (['["a list"]'], r"line 1: expected a JSON object, got list"),
        ([{"question": "Q?"}], r"line 1: field 'answers': Field required"),
        ([{"question": "Q?", "answers": []}], r"line 1: field 'answers': List should have at least 1 item"),
        ([{"question": "Q?", "answers": ["  "]}], r"line 1: field 'answers.0': String should have at least 1 character"),
        ([{"question": "Q?", "answers": ["a"], "answr": 1}], r"line 1: field 'answr': Extra inputs are not permitted"),
        ([{"question": "Q?", "answers": ["a"], "split": "val"}], r"line 1: field 'split': Input should be 'train', 'dev' or 'test'"),
        (
            [QUESTIONS[0], {"question": "Q?", "answers": ["a"], "chain": [{"doc_id": "nope", "query": "x"}]}],
            r"line 2: field 'chain.0.doc_id': no document 'nope' in the corpus",
        ),
        ([QUESTIONS[1], QUESTIONS[1]], r"line 2: field 'id': question 'acme-river' is listed twice"),
        ([""], r"tasks file .*t.jsonl: empty"),
    ],
)
def test_bad_task_files_name_the_line_and_the_field(tmp_path, rows, message):
    corpus = write(tmp_path / "docs.jsonl", DOCS)
    with pytest.raises(EnvOptionError, match=message):
        agentrl.make("agentrl/SearchQA-v0", tasks=write(tmp_path / "t.jsonl", rows), corpus=corpus)


def test_bad_corpus_files_and_options(tmp_path):
    tasks = write(tmp_path / "t.jsonl", [QUESTIONS[0]])
    bad = write(tmp_path / "docs.jsonl", [DOCS[0], {"id": "acme", "title": "Again", "text": ""}])
    with pytest.raises(EnvOptionError, match=r"corpus file .*docs.jsonl, line 2: field 'id': document 'acme' is listed twice"):
        agentrl.make("agentrl/SearchQA-v0", tasks=tasks, corpus=bad)
    no_title = write(tmp_path / "docs2.jsonl", [{"id": "a", "text": "x"}])
    with pytest.raises(EnvOptionError, match=r"line 1: field 'title': Field required"):
        agentrl.make("agentrl/SearchQA-v0", tasks=tasks, corpus=no_title)
    with pytest.raises(EnvOptionError, match=r"corpus: needs tasks=PATH too"):
        agentrl.make("agentrl/SearchQA-v0", corpus=write(tmp_path / "docs3.jsonl", DOCS))
    with pytest.raises(EnvOptionError, match=r"tasks: cannot read .*missing.jsonl: No such file"):
        agentrl.make("agentrl/SearchQA-v0", tasks=str(tmp_path / "missing.jsonl"))
