"""Pulumi components: each turns part of the resolved depot model into resources."""
