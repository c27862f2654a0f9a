"""Readiness: run the incident library and the capacity sweep, and decide GO or NO-GO against a
launch's policy (a scorecard in JSON and HTML)."""
