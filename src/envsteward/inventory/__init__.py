"""The secret inventory: every secret reference of every environment checked against its store (exists,
version, age against the policy, due/overdue), orphans under the managed prefixes, plaintext secrets in the
desired configuration and in live non-secret sources, and PEM certificates near expiry. No Prefect here
(the ``secret-inventory`` flow wraps it).

* :mod:`envsteward.inventory.metadata` — the store port (metadata only; adapters implement it);
* :mod:`envsteward.inventory.model` — statuses and findings;
* :mod:`envsteward.inventory.references` — which references an environment uses (pure);
* :mod:`envsteward.inventory.classify` — the decisions: status and findings per reference, orphans,
  certificates (pure);
* :mod:`envsteward.inventory.plaintext` — secret-looking values (pure);
* :mod:`envsteward.inventory.certificates` — PEM certificate facts (pure);
* :mod:`envsteward.inventory.runner` — the calls to the stores and sources, and the whole inventory
  without Prefect (CLI);
* :mod:`envsteward.inventory.report` — table rows, JSON, markdown and alert items.

Values are read only to tell whether a secret is a certificate (and when it expires) and whether a
non-secret value looks like a secret; they never leave the function that read them.
"""
