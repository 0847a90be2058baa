"""Pulumi entry point: the depot for the selected stack (see depot/program.py)."""

from depot.program import deploy

deploy()
