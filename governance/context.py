"""The process-wide state of a running hub: settings, database and signing key."""

from __future__ import annotations

from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from governance.config import HubSettings
from governance.db import Database
from governance.rate_limit import FailureLimiter
from linksight.signing import load_or_create_private_key


@dataclass
class Hub:
    """The state that every request handler of one hub shares."""

    settings: HubSettings
    database: Database
    private_key: Ed25519PrivateKey
    failure_limiter: FailureLimiter

    @classmethod
    def open(cls, settings: HubSettings) -> Hub:
        """Connect to the database, create missing tables and load the key.

        The signing key is created at ``settings.key_path`` if it does not
        exist yet.
        """
        database = Database(settings.database_url)
        database.create_schema()
        private_key = load_or_create_private_key(settings.key_path)
        limiter = FailureLimiter(
            settings.auth_failure_limit, settings.auth_failure_window_seconds
        )
        return cls(
            settings=settings,
            database=database,
            private_key=private_key,
            failure_limiter=limiter,
        )

    def close(self) -> None:
        """Release the database connections."""
        self.database.close()
