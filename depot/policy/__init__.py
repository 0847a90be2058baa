"""Guardrails: rules as plain functions, checked offline (`depot check`) and by CrossGuard."""
