"""Reviewing infrastructure without the engine: plan, diff and graph of a stack."""
