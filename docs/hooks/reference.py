"""MkDocs hook: the reference pages, generated from the code at every build (never committed).

``depot.tools.reference_docs`` writes them; this hands them to MkDocs as files of the site, so
``mkdocs build --strict`` checks their links like any page's.
"""

from __future__ import annotations

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File, Files

from depot.tools.reference_docs import PAGES


def on_files(files: Files, config: MkDocsConfig) -> Files:
    for path, render in PAGES.items():
        if files.get_file_from_path(path) is not None:
            raise PluginError(f"docs/{path} is generated from the code: remove the file")
        files.append(File.generated(config, path, content=render()))
    return files
