"""A real two-node Ray cluster on this machine, shared by the cluster tests (started once)."""

import os
import warnings

import pytest

STORE_BYTES = 80 * 1024**2  # small object stores
JOIN_TIMEOUT_S = 180  # generous: the CI machine may be busy
STARTS = 2


def start_cluster(cluster_class, starts: int = STARTS):
    """A head and one worker node (1 CPU each) of ``cluster_class`` (Ray's ``Cluster``), both joined.

    The worker gets ``JOIN_TIMEOUT_S`` to join, but each node's raylet must also register within
    a window Ray fixes at 30 s (no parameter sets it), and under heavy load one can miss it ("The
    current node timed out during startup"). A failed start is shut down and the whole cluster
    started again, at most ``starts`` times in all; the last failure is raised, so a real fault
    still fails the session within a bounded time. (A node that failed inside Ray's constructor
    leaves no handle to stop it: its processes end with this one, through Ray's exit hook.)"""
    for start in range(1, starts + 1):
        c = None
        try:
            c = cluster_class(
                initialize_head=True,
                head_node_args={"num_cpus": 1, "object_store_memory": STORE_BYTES, "include_dashboard": False},
            )
            c.add_node(num_cpus=1, object_store_memory=STORE_BYTES, wait=False)  # waited for below, longer
            c.wait_for_nodes(timeout=JOIN_TIMEOUT_S)
            return c
        except Exception as exc:
            if c is not None:
                c.shutdown()
            if start == starts:
                raise
            warnings.warn(f"the Ray test cluster did not start ({exc}); starting it again", stacklevel=1)


@pytest.fixture(scope="session")
def cluster():
    """Two raylets on loopback (:func:`start_cluster`); torn down after the session."""
    ray = pytest.importorskip("ray", reason="ray is not installed (pip install 'agentrl[ray]')")
    from ray.cluster_utils import Cluster

    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"  # Ray's switch for binding to 127.0.0.1
    c = None
    try:
        c = start_cluster(Cluster)
        yield c
    finally:
        if ray.is_initialized():
            ray.shutdown()
        if c is not None:
            c.shutdown()
        os.environ.pop("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", None)


def on_cluster(cluster, **changes) -> list[str]:
    """``--set`` overrides that put a training config's rollouts on ``cluster`` (tiny reservations)."""
    settings = {"address": cluster.address, "env_worker_cpus": 0.5, "sampler_cpus": 0.5, "placement_timeout_s": 300,
                **changes}
    return [f"cluster.{k}={v}" for k, v in settings.items()]
