"""A real two-node Ray cluster on this machine, shared by the cluster tests (started once)."""

import os

import pytest


@pytest.fixture(scope="session")
def cluster():
    """Two raylets (1 CPU each, small object stores) on loopback; torn down after the session."""
    ray = pytest.importorskip("ray", reason="ray is not installed (pip install 'agentrl[ray]')")
    from ray.cluster_utils import Cluster

    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"  # Ray's switch for binding to 127.0.0.1
    store = 80 * 1024**2
    c = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 1, "object_store_memory": store, "include_dashboard": False},
    )
    try:
        c.add_node(num_cpus=1, object_store_memory=store)
        c.wait_for_nodes(timeout=180)  # generous: the CI machine may be busy
        yield c
    finally:
        if ray.is_initialized():
            ray.shutdown()
        c.shutdown()
        os.environ.pop("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", None)


def on_cluster(cluster, **changes) -> list[str]:
    """``--set`` overrides that put a training config's rollouts on ``cluster`` (tiny reservations)."""
    settings = {"address": cluster.address, "env_worker_cpus": 0.5, "sampler_cpus": 0.5, "placement_timeout_s": 300,
                **changes}
    return [f"cluster.{k}={v}" for k, v in settings.items()]
