"""Linksight: federated queries over data that stays at each organisation.

This package holds what the governance hub, the data stations and the
scientist's client share: the dataset schema, the query specification and its
parser, the collaboration rules, task signing and the audit-chain format.
"""

__version__ = "0.1.0"
