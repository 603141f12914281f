"""Point-in-time recovery for PostgreSQL: continuous WAL archiving, base backups, restore to a moment.

* :mod:`.walnames` — WAL file names, object keys, a segment's first page (pure).
* :mod:`.archive` — ``wal push`` / ``wal fetch``: one encrypted object per WAL file, primary + DR.
* :mod:`.tarstream` — ``pg_basebackup``'s tar checked against ``backup_manifest`` (and unpacked).
* :mod:`.base` — base backups through the backup pipeline; restore, recovery settings, start and wait.
* :mod:`.retention` — which base backups and WAL to delete (WAL a kept base backup needs never is).
* :mod:`.rpo` — the RPO a restore achieved; the live exposure of an archive.
* :mod:`.check` — is a live server set up to archive here.
* :mod:`.context` — builds the above for a catalog target from narrow services (the CLI's entry).

Nothing here imports Prefect or ``envsteward.services``; the package itself imports nothing so that
``envsteward wal push`` (run once per segment) loads only what it uses.
"""
