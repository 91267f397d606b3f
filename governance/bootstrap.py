"""Initialising a new hub: database, signing key, first organisation and admin."""

from __future__ import annotations

from governance.api_models import OrganisationCreate, UserCreate
from governance.config import HubSettings
from governance.db import Database, describe_url
from governance.models import Organisation, User, utc_now
from governance.tokens import issue_token
from linksight.signing import load_or_create_private_key


class AlreadyInitialisedError(RuntimeError):
    """The hub's database already has users; initialising again is refused."""


def initialise_hub(settings: HubSettings, admin: str, organisation: str) -> str:
    """Create the hub's tables, key, first organisation and admin user.

    Returns the admin's token, which is stored only as a hash and cannot be
    shown again.

    Raises
    ------
    AlreadyInitialisedError
        If the database already has a user.
    pydantic.ValidationError
        If `admin` or `organisation` is not a valid name.
    """
    OrganisationCreate(name=organisation)
    UserCreate(name=admin, organisation=organisation, roles=["admin"])
    database = Database(settings.database_url)
    try:
        if database.is_initialised():
            raise AlreadyInitialisedError(
                f"the hub database {describe_url(settings.database_url)} already "
                "has users; to start over, stop the hub and move its state "
                "directory (or database) away"
            )
        database.create_schema()
        load_or_create_private_key(settings.key_path)
        with database.session() as session:
            now = utc_now()
            owner = Organisation(name=organisation, created_at=now)
            session.add(owner)
            admin_user = User(
                name=admin, organisation=owner, roles=["admin"], created_at=now
            )
            session.add(admin_user)
            token, _ = issue_token(
                session,
                user=admin_user,
                lifetime_days=settings.user_token_days,
                label="issued by hub init",
                now=now,
            )
            session.flush()
            database.audit_log.append(
                "hub.initialised",
                organisation=organisation,
                user=admin,
                role="admin",
                outcome="created",
                details={"admin": admin, "organisation": organisation},
                connection=session.connection(),
            )
            session.commit()
    finally:
        database.close()
    return token
