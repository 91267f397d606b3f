"""Datasets of a collaboration: stations register them, members read them.

Only public metadata (the schema) is stored and shown, never a value.
"""

from __future__ import annotations

from fastapi import APIRouter

from governance.api_models import DatasetOut, DatasetRegistrationBody
from governance.dataset_registry import register_dataset
from governance.dependencies import HubDep, SessionDep, StationDep, UserDep
from governance.errors import error_responses
from governance.lookups import find_collaboration, require_member
from governance.views import datasets_out

router = APIRouter(
    prefix="/collaborations/{name}/datasets",
    tags=["datasets"],
    responses=error_responses(401, 403, 429),
)


@router.put("/{dataset}", responses=error_responses(404, 409, 422))
def put_dataset(
    name: str,
    dataset: str,
    body: DatasetRegistrationBody,
    station: StationDep,
    session: SessionDep,
    hub: HubDep,
) -> DatasetOut:
    """Register that the calling station has `dataset`, with this schema.

    The station's organisation must be a member. Registering again replaces
    the station's earlier schema. Other stations that have the dataset must
    have declared the same columns, or the reply is 409 ``schema_mismatch``.
    """
    register_dataset(session, hub, station, name, dataset, body.dataset_schema)
    session.flush()
    collaboration = find_collaboration(session, name)
    return next(
        out for out in datasets_out(session, collaboration.id) if out.name == dataset
    )


@router.get("", responses=error_responses(404, 422))
def list_datasets(
    name: str, user: UserDep, session: SessionDep, hub: HubDep
) -> list[DatasetOut]:
    """List the collaboration's datasets with their schemas and stations.

    Open to users of member organisations and to admins.
    """
    collaboration = find_collaboration(session, name)
    require_member(
        session, hub, user, collaboration, "dataset.read", admin_allowed=True
    )
    return datasets_out(session, collaboration.id)
