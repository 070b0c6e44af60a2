"""Reward shapers: callables ``shaper(batch) -> batch`` that rewrite reward columns before an
estimator runs. They see the whole batch, so group-level hooks (OTC's group minimum, GTPO's
partial credit from passing group members) see all G rollouts of a group."""
