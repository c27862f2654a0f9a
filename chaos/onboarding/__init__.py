"""Bringing a user's own things in: `deadair init` (a compose file of theirs gets Toxiproxy, links,
a first experiment) and `deadair import` (a Chaos Toolkit experiment of theirs, translated)."""
