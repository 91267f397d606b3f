"""The hub's REST endpoints, one router per resource.

Each router and route declares the error statuses it can return with
:func:`governance.errors.error_responses`. The schema-based test
(tests/governance/test_hub_openapi.py) calls every operation as each kind
of caller and fails on a status that is not declared.

Who may call what (every endpoint but ``GET /health`` needs a bearer token).
A touched steward is a steward of an organisation whose station has the
request's dataset in that collaboration.

| endpoint | caller |
| --- | --- |
| GET /health | anyone |
| GET /public-key, GET /users/me | any user or station |
| GET /users/me/result-key, PUT /users/me/result-key | any user |
| POST /organisations, /users, /stations, /collaborations | admin |
| GET /organisations, GET /collaborations | any user |
| GET /collaborations/{name}, GET .../datasets | member users, admin |
| PUT /stations/me, GET /stations/me/tasks | station |
| PUT /collaborations/{name}/datasets/{dataset} | station of a member |
| POST /requests | scientist of a member |
| GET /requests, GET /requests/{id} | submitter, touched steward, admin |
| POST /requests/{id}/approve, /reject | touched steward, not the submitter |
| POST /requests/{id}/revoke | submitter, touched steward |
| GET /requests/{id}/result | submitter, admin |
| GET /tasks/{task_id}, POST /tasks/{task_id}/events | station that is a party |
| GET /tokens, POST /tokens, DELETE /tokens/{id} | own: anyone; others': admin |
| GET /collaborations/{name}/rules | member users, admin |
| POST .../rules, .../rules/{v}/accept, .../withdraw | steward of a member |
| GET /audit, GET /audit/verify, GET /audit/checkpoints | admin, steward |
| POST /audit/checkpoint-requests | admin, steward |
| GET /audit/head, GET /audit/records | station, admin, steward |
| POST /audit/checkpoints, POST /audit/key-rotations | station |
"""

from governance.routers import (
    audit,
    collaborations,
    datasets,
    health,
    organisations,
    requests,
    rules,
    stations,
    tasks,
    tokens,
    users,
)

ROUTERS = (
    health.router,
    organisations.router,
    users.router,
    tokens.router,
    stations.router,
    collaborations.router,
    rules.router,
    datasets.router,
    requests.router,
    tasks.router,
    audit.router,
)

__all__ = ["ROUTERS"]
