"""Validate ``Pulumi.yaml`` against Pulumi's project schema: ``python -m ... FILE SCHEMA``."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import jsonschema
import yaml


def problems(project_file: Path, schema_file: Path) -> list[str]:
    """Every schema violation in ``project_file``, as ``file: path: message``."""
    document = yaml.safe_load(project_file.read_text())
    schema = json.loads(schema_file.read_text())
    validator = jsonschema.validators.validator_for(schema)(schema)  # the schema's own draft
    return [
        f"{project_file}: {'/'.join(map(str, error.absolute_path)) or '(root)'}: {error.message}"
        for error in sorted(validator.iter_errors(document), key=str)
    ]


def main(argv: list[str]) -> int:
    project_file, schema_file = (Path(arg) for arg in argv)
    found = problems(project_file, schema_file)
    print("\n".join(found) if found else f"{project_file}: valid")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
