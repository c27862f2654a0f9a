"""The experiment language: a YAML file in, a validated model out, nothing run.

model, loader (pass 1 positions, 2 variables, 3 schema, 4 meaning), expectations, probes
(declarations and tolerances), plan (the schedule), units, chaostoolkit (import), registry (the
fault and measure names the language knows, registered by the code that runs them).
"""
