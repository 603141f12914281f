"""Secret rotation: the four-step protocol of Secrets Manager rotation (create a pending value, set it where
it is used, test it, finish by making it current), for every kind of secret, and its decisions.

* :mod:`.model`: the plan, the steps, the errors (no values anywhere);
* :mod:`.ports`: the two narrow protocols adapters implement: a :class:`~.ports.SecretStage` (where the
  value is stored: Vault KV v2, Secrets Manager, SSM) and a :class:`~.ports.SecretConsumer` (where it is
  used besides the store: a PostgreSQL role);
* :mod:`.engine`: :class:`~.engine.Rotation`, the steps over a stage and a consumer, and restoring the
  previous value on any failure;
* :mod:`.decisions`: what to rotate and whether it waits for approval (pure);
* :mod:`.sessions`: rotations in progress, held in this process only (tasks pass a handle, never a value);
* :mod:`.render`: the plan and the approval request as Markdown.

Never imports prefect; adapters are reached through ``envsteward.adapters.registry.ROTATORS``.
"""
