"""Scale-out on Ray (optional extra ``agentrl[ray]``): rollouts on env-worker actors with a
sampler actor, driven by the ordinary rollout engine (see ``agentrl/cluster/README.md``).

:class:`ClusterConfig` (the ``cluster:`` section of a training config) imports light; the Ray
parts (:mod:`agentrl.cluster.ray_rollout`) import Ray on first use."""

from agentrl._lazy import lazy_attributes
from agentrl.cluster.config import ClusterConfig

__all__ = ["ClusterConfig", "ClusterError", "EnvWorker", "EnvWorkerLost", "RayRolloutEngine", "RayRollouts", "SamplerServer"]
__getattr__ = lazy_attributes(__name__, dict.fromkeys(__all__[1:], "agentrl.cluster.ray_rollout"))
