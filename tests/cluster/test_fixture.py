"""The shared cluster fixture's start (tests/cluster/conftest.py): a failed start is shut down and
made once more, never a third time (no Ray needed: a stand-in for Ray's ``Cluster``)."""

from typing import ClassVar

import pytest

from tests.cluster.conftest import JOIN_TIMEOUT_S, start_cluster

TIMED_OUT = "The current node timed out during startup."  # Ray's words


def flaky(fail_at: str, failures: int):
    """A stand-in for Ray's ``Cluster`` whose first ``failures`` starts fail at ``fail_at``
    ("head": in the constructor, "worker": adding the second node)."""

    class Cluster:
        made: ClassVar[list] = []

        def __init__(self, initialize_head: bool, head_node_args: dict):
            assert initialize_head
            self.nodes, self.shut_down, self.joined = [head_node_args], False, None
            self.made.append(self)
            if fail_at == "head" and len(self.made) <= failures:
                raise Exception(TIMED_OUT)  # noqa: TRY002 - as Ray raises it

        def add_node(self, **args):
            self.nodes.append(args)
            if fail_at == "worker" and len(self.made) <= failures:
                raise Exception(TIMED_OUT)  # noqa: TRY002 - as Ray raises it

        def wait_for_nodes(self, timeout: float):
            self.joined = timeout

        def shutdown(self):
            self.shut_down = True

    return Cluster


def test_a_worker_that_misses_the_window_gets_a_fresh_cluster():
    cls = flaky("worker", failures=1)
    with pytest.warns(UserWarning, match="did not start .*timed out during startup.*starting it again"):
        c = start_cluster(cls)
    first, second = cls.made
    assert c is second and first.shut_down and not second.shut_down
    assert second.joined == JOIN_TIMEOUT_S and len(second.nodes) == 2
    assert second.nodes[1]["num_cpus"] == 1 and second.nodes[1]["wait"] is False  # joined within JOIN_TIMEOUT_S


def test_a_head_that_fails_is_started_again():
    cls = flaky("head", failures=1)
    with pytest.warns(UserWarning):
        c = start_cluster(cls)
    assert c is cls.made[1] and len(cls.made) == 2 and c.joined == JOIN_TIMEOUT_S


def test_a_start_that_keeps_failing_raises_after_the_second():
    cls = flaky("worker", failures=5)
    with pytest.warns(UserWarning), pytest.raises(Exception, match="timed out during startup"):
        start_cluster(cls)
    assert len(cls.made) == 2 and all(c.shut_down for c in cls.made)
