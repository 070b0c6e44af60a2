"""`agentrl eval` on user mistakes and a full disk: one clear line and a non-zero exit, never a traceback."""

import errno
import os
import subprocess
import sys
import time

import pytest
from click.testing import CliRunner

import agentrl
from agentrl.cli import main
from agentrl.eval import runner
from agentrl.eval.runner import EPISODES_FILE, load_finished

MAZE = ["eval", "run", "--env", "agentrl/Maze-v0"]


def invoke(*args):
    result = CliRunner().invoke(main, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exc_info
    return result


def test_report_on_a_folder_that_is_not_a_run(tmp_path):
    result = invoke("eval", "report", str(tmp_path))
    assert result.exit_code == 1
    assert result.stderr.strip() == f"Error: {tmp_path}: not a readable eval run ({tmp_path} is not an eval run folder (no run.json))"
    (tmp_path / "run.json").write_text("{not json")
    assert "not valid JSON" in invoke("eval", "report", str(tmp_path)).stderr


def test_a_split_without_tasks(tmp_path):
    result = invoke(*MAZE, "--split", "dev", "-o", str(tmp_path / "r"))
    assert result.exit_code == 1 and "agentrl/Maze-v0 has no tasks in split 'dev'" in result.stderr
    assert not (tmp_path / "r").exists()


def test_an_output_folder_that_cannot_be_written(tmp_path):
    (tmp_path / "file").write_text("")
    result = invoke(*MAZE, "-o", str(tmp_path / "file" / "run"))
    assert result.exit_code == 1 and "cannot write to the output folder" in result.stderr


def test_a_missing_model_and_the_greedy_k_warning(tmp_path):
    result = invoke(*MAZE, "--agent", "hf", "--model", str(tmp_path / "nope"), "-k", "4", "-o", str(tmp_path / "r"))
    assert result.exit_code == 1
    assert "warning: -k 4 with --temperature 0 (greedy decoding): the 4 samples of a task are identical" in result.stderr
    assert f"Error: model folder '{tmp_path / 'nope'}' does not exist" in result.stderr
    sampled = invoke(*MAZE, "--agent", "hf", "--model", str(tmp_path / "nope"), "-k", "4", "--temperature", "1",
                     "-o", str(tmp_path / "r"))
    assert "greedy" not in sampled.stderr


def test_settings_mismatch_on_the_command_line(tmp_path):
    assert invoke(*MAZE, "--max-tasks", "2", "-o", str(tmp_path)).exit_code == 0
    again = invoke(*MAZE, "--max-tasks", "2", "--seed", "5", "-o", str(tmp_path))
    assert again.exit_code == 1 and "(seed: 0 -> 5)" in again.stderr


def test_o_is_the_output_and_env_options_are_e(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for value in ("size=3", "tasks=/data/my_tasks.jsonl"):  # a path value is still an env option
        refused = invoke(*MAZE, "-o", value)
        assert refused.exit_code == 2, value
        assert "looks like an env option; -o is the output, env options are -e KEY=VALUE" in refused.stderr
    assert list(tmp_path.iterdir()) == []  # nothing written under a name like "tasks="
    ok = invoke(*MAZE, "-e", "size=3", "--max-tasks", "1", "-o", str(tmp_path / "new"))
    old = invoke(*MAZE, "--option", "size=3", "--max-tasks", "1", "-O", str(tmp_path / "old"))
    assert ok.exit_code == old.exit_code == 0
    assert '"size": 3' in (tmp_path / "new" / "run.json").read_text() and (tmp_path / "old" / "report.html").exists()


def test_a_full_disk_mid_run_is_one_line_and_the_run_resumes(tmp_path, monkeypatch):
    real_write, writes = runner.write_jsonl, []

    def write_until_full(path, records, append=False):
        writes.append(path)
        if len(writes) > 3:
            with open(path, "a") as f:
                f.write('{"env_id": "agentrl/Ma')  # what a full disk leaves: a cut line
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real_write(path, records, append)

    monkeypatch.setattr(runner, "write_jsonl", write_until_full)
    out = tmp_path / "r"
    full = invoke(*MAZE, "--max-tasks", "6", "--concurrency", "1", "-o", str(out))
    assert full.exit_code == 1
    assert full.stderr.splitlines()[-1] == (
        f"Error: No space left on device while writing {out / EPISODES_FILE}; everything completely written is "
        "kept: free some space and run the same command again to resume"
    )
    monkeypatch.setattr(runner, "write_jsonl", real_write)
    resumed = invoke(*MAZE, "--max-tasks", "6", "--concurrency", "1", "-o", str(out))
    assert resumed.exit_code == 0, resumed.stderr
    assert len(load_finished(out)) == 6


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")
def test_a_really_full_tmpfs(tmp_path):
    disk = tmp_path / "disk"
    disk.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(disk)], check=False).returncode:
        pytest.skip("mount -t tmpfs refused here")
    try:
        args = (*MAZE, "--agent", "random", "-e", "num_tasks=400", "--split", "train", "--concurrency", "1",
                "-o", str(disk / "r"))
        full = invoke(*args)
        assert full.exit_code == 1 and "No space left on device" in full.stderr, full.stderr
        subprocess.run(["mount", "-o", "remount,size=8m", str(disk)], check=True)
        resumed = invoke(*args)
        assert resumed.exit_code == 0, resumed.stderr
        expected = agentrl.make("agentrl/Maze-v0", num_tasks=400).tasks.split_sizes()["train"]
        finished = load_finished(disk / "r")
        assert len({t.task_id for t in finished}) == len(finished) == expected
    finally:
        subprocess.run(["umount", str(disk)], check=False)


def test_a_model_folder_that_does_not_load_is_one_line(tmp_path, model, tokenizer):
    no_tokenizer, bad_config, no_weights = (tmp_path / name for name in ("no_tokenizer", "bad_config", "no_weights"))
    model.save_pretrained(no_tokenizer)
    for folder in (bad_config, no_weights):
        model.config.save_pretrained(folder)
        tokenizer.save_pretrained(folder)
    (bad_config / "config.json").write_text("{not json")
    expected = {
        no_tokenizer: f"Error: {str(no_tokenizer)!r} holds no tokenizer (no tokenizer.json or tokenizer_config.json): "
                      "pass --tokenizer PATH",
        bad_config: f"Error: cannot load a tokenizer from {str(bad_config)!r}: It looks like the config file at "
                    f"'{bad_config / 'config.json'}' is not a valid JSON file.",
        no_weights: f"Error: cannot load the model from {str(no_weights)!r}: Error no file named model.safetensors, "
                    f"or pytorch_model.bin, found in directory {no_weights}.",
    }
    for folder, line in expected.items():
        result = invoke(*MAZE, "--agent", "hf", "--model", str(folder), "--max-tasks", "1", "-o", str(tmp_path / "r"))
        assert result.exit_code == 1 and result.stderr.strip() == line, result.stderr


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_run_that_scored_nothing_says_so_and_shows_no_score(tmp_path):
    """Every episode an infra error (the retrieval server is down): no score is shown (not 0.000),
    the cause is named, the exit is non-zero; with the server up, the same command retries them."""
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    out = tmp_path / "r"
    result = invoke("eval", "run", "--env", "agentrl/SearchQA-v0", "-e", f"retriever_url={url}", "--max-tasks", "2",
                    "-o", str(out))
    assert result.exit_code == 1
    rows = {line.split("│")[1].strip(): line.split("│")[2].strip() for line in result.stdout.splitlines()
            if line.count("│") == 3}
    assert rows["episodes scored / run"] == "0 / 2" and rows["infra errors (left out)"] == "2"
    assert rows["success rate [95% CI]"] == rows["mean reward"] == rows["invalid-action rate"] == "n/a"
    assert result.stderr.splitlines()[-1].startswith(
        "Error: no episode was scored: 2 of 2 failed for infrastructure reasons (left out of the scores); fix the "
        "cause and run the same command again to retry them. First error: RetrievalUnavailable: retrieval server "
        f"{url} unreachable: ClientConnectorError("
    )
    report = (out / "report.html").read_text()
    assert "<td>success rate [95% CI]</td><td>n/a</td>" in report and "0.000 [0.000, 1.000]" not in report
    server = subprocess.Popen([sys.executable, "-m", "agentrl_envs.search.service", "--port", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not _answers(port):
            assert server.poll() is None and time.monotonic() < deadline
            time.sleep(0.2)
        retried = invoke("eval", "run", "--env", "agentrl/SearchQA-v0", "-e", f"retriever_url={url}",
                         "--max-tasks", "2", "-o", str(out))
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert retried.exit_code == 0 and "2 / 2" in retried.stdout and "infrastructure" not in retried.stderr
    assert [t.status for t in load_finished(out)] == ["ok", "ok"]  # the infra rows replaced, not added to


def _answers(port: int) -> bool:
    import socket

    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_compare_writes_into_a_new_folder_and_refuses_a_file_as_one(tmp_path):
    for name in ("a", "b"):
        assert invoke(*MAZE, "--max-tasks", "1", "-o", str(tmp_path / name)).exit_code == 0
    runs = (str(tmp_path / "a"), str(tmp_path / "b"))
    made = invoke("eval", "compare", *runs, "-o", str(tmp_path / "new" / "compare.html"))
    assert made.exit_code == 0 and (tmp_path / "new" / "compare.html").exists()
    (tmp_path / "file").write_text("")
    refused = invoke("eval", "compare", *runs, "-o", str(tmp_path / "file" / "compare.html"))
    assert refused.exit_code == 1 and "cannot write to the output folder" in refused.stderr


def test_the_summary_shows_episodes_cut_short(tmp_path, model, tokenizer):
    """A random tiny model's 2-token turns all hit --max-tokens: the episodes end truncated, which
    the summary says (an invalid-action rate of 0.000 alone read like well-formed actions)."""
    model.save_pretrained(tmp_path / "model")
    tokenizer.save_pretrained(tmp_path / "model")
    result = invoke(*MAZE, "-e", "size=3", "--agent", "hf", "--model", str(tmp_path / "model"), "--max-tasks", "2",
                    "--max-tokens", "2", "-o", str(tmp_path / "r"))
    assert result.exit_code == 0, result.stderr
    rows = {line.split("│")[1].strip(): line.split("│")[2].strip() for line in result.stdout.splitlines()
            if line.count("│") == 3}
    assert [t.status for t in load_finished(tmp_path / "r")] == ["truncated", "truncated"]
    assert rows["truncated"] == "1.000"


def test_the_openai_agent_without_a_tokenizer_folder_says_to_pass_one(tmp_path):
    """``--model`` of ``--agent openai`` is the served name: it is not tried as a Hub id (offline,
    slow, a transformers reason); the user is told to pass ``--tokenizer``, before any server call."""
    result = invoke(*MAZE, "--agent", "openai", "--base-url", "http://127.0.0.1:9", "--model", "Qwen/Qwen2.5-0.5B",
                    "--max-tasks", "1", "-o", str(tmp_path / "r"))
    assert result.exit_code == 1
    assert result.stderr.strip() == "Error: tokenizer path 'Qwen/Qwen2.5-0.5B' is not a directory (pass --tokenizer PATH)"
