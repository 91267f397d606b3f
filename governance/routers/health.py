"""Liveness and the hub's public key."""

from __future__ import annotations

from fastapi import APIRouter

import linksight
from governance.api_models import Health, PublicKey
from governance.dependencies import HubDep, PrincipalDep
from governance.errors import error_responses
from linksight.signing import public_key_text

router = APIRouter(tags=["hub"])


@router.get("/health")
def health() -> Health:
    """Report that the hub is up, and its version. Needs no token."""
    return Health(status="ok", version=linksight.__version__)


@router.get("/public-key", responses=error_responses(401, 429))
def public_key(hub: HubDep, principal: PrincipalDep) -> PublicKey:
    """Return the public key that verifies the hub's task signatures.

    Stations must not rely on this endpoint alone, because an impersonated
    hub would return its own key. The operator copies the key into each
    station's configuration from `linksight hub public-key`.
    """
    return PublicKey(public_key=public_key_text(hub.private_key))
