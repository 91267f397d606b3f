"""Governance hub: the REST service over organisations, collaborations, requests and the audit trail."""
