"""The governance hub: a REST service over organisations, collaborations,
dataset schemas, requests and their approvals, and the audit trail.

The hub never receives a record. It decides, with the stewards, which
queries may run, signs the approved task for the stations, and keeps the
hash-chained audit log. Start it with ``linksight hub serve`` (see
:mod:`governance.cli`), or build the application with
:func:`governance.app.create_app`.
"""
