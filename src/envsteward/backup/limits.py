"""How long backup work may run: the deadlines shared by the flow's tasks, the tools and crash cleanup.

Kept in a leaf module (no imports) so the backup sources, :mod:`envsteward.backup.leftovers` and the
Prefect tasks can all use the same numbers without importing each other.
"""

from __future__ import annotations

BACKUP_TIMEOUT_SECONDS = 6 * 3600.0
"""The longest a backup may run: the timeout of the flow's backup task (``tasks/backup.py``; a unit test
keeps the two equal), and the deadline of the dump tool (``pg_dump``) it starts. The next scheduled run
starts 6 hours later."""

RESTORE_TIMEOUT_SECONDS = 6 * 3600.0
"""The deadline of a restore tool (``pg_restore``): a restore of the largest backup a 6-hour dump can
produce, with room to spare for index builds."""
