"""MkDocs hooks (mkdocs.yml `hooks:`): lists as GitHub reads them, and the benchmark results the docs link to.

The docs are written for GitHub, where a bullet list may start right after a line of text; Python-Markdown
needs a blank line before it and would run the items into the paragraph. `GitHubLists` adds that blank line
(after the README sections are included, outside code blocks), for the pages and the docstrings alike.

The docs link to reports and plots under `benchmarks/results/` with relative paths that work on GitHub
(`../benchmarks/results/mujoco/report.md`, `![...](../benchmarks/results/.../learning_curve.png)`). Those
files are outside `docs/`, so MkDocs would not find them. `on_files` adds each such file that exists, and the
files the added reports link to, to the site under `repo/benchmarks/results/...` (reports as pages outside the
nav), so the same links resolve in both places. A link to a missing file, or to anything outside
`benchmarks/results/`, is left alone, and `mkdocs build --strict` fails on it as on any broken link.
"""

from __future__ import annotations

import posixpath
import re
from pathlib import Path

from markdown import Extension, Markdown
from markdown.preprocessors import Preprocessor
from mkdocs.config.defaults import MkDocsConfig
from mkdocs.plugins import event_priority
from mkdocs.structure.files import File, Files, InclusionLevel

LIST_ITEM = re.compile(r"\s*(?:[-*+]|\d+[.)])\s")
"""A line that is a list item (bulleted or numbered, at any indentation)."""
INTERRUPTS = re.compile(r"(?:[-*+]|1[.)])\s")
"""A list item that may start right after a paragraph on GitHub: a bullet, or a numbered list from 1."""


class GitHubListsPreprocessor(Preprocessor):
    """Adds a blank line between a paragraph line and a list item that follows it (outside fenced code)."""

    def run(self, lines: list[str]) -> list[str]:
        out: list[str] = []
        fence = ""
        for line in lines:
            stripped = line.lstrip()
            if fence:
                fence = "" if stripped.startswith(fence) else fence
            elif stripped.startswith(("```", "~~~")):
                fence = stripped[:3]
            elif (INTERRUPTS.match(line) and out and out[-1].strip() and not LIST_ITEM.match(out[-1])
                  and not out[-1].startswith((" ", "\t", "|", "#", ">", "<"))):
                out.append("")  # the previous line is a paragraph's (no list item, table row or heading)
            out.append(line)
        return out


class GitHubLists(Extension):
    def extendMarkdown(self, md: Markdown) -> None:  # Python-Markdown's name
        # After snippets (32) include the README's sections, before fenced code (25) is stashed.
        md.preprocessors.register(GitHubListsPreprocessor(md), "github_lists", 29)


@event_priority(100)  # before mkdocstrings reads the extensions for the docstrings
def on_config(config: MkDocsConfig) -> MkDocsConfig:
    config.markdown_extensions.append(GitHubLists())  # type: ignore[arg-type]
    return config


PUBLISHED = "benchmarks/results/"
"""The one folder outside docs/ whose linked files the site carries (as paths relative to the repository)."""
LINK = re.compile(r"\]\(\s*<?([^)\s>#]+)")
"""The target of a Markdown link or image, up to an anchor or title."""


def linked_outside(src_uri: str, markdown: str) -> set[str]:
    """The repository paths under PUBLISHED that a page (its docs-relative `src_uri`) links to."""
    found = set()
    for target in LINK.findall(markdown):
        if "://" in target or target.startswith(("/", "mailto:")):
            continue
        path = posixpath.normpath(posixpath.join(posixpath.dirname(src_uri), target))  # "../benchmarks/..."
        if path.startswith("../") and path[3:].startswith(PUBLISHED):
            found.add(path[3:])
    return found


def on_files(files: Files, config: MkDocsConfig) -> Files:
    root = Path(config.docs_dir).parent
    todo = set()
    for file in files.documentation_pages():
        todo |= linked_outside(file.src_uri, Path(file.abs_src_path).read_text(encoding="utf-8"))
    added: set[str] = set()
    while todo:
        path = todo.pop()
        if path in added or not (root / path).is_file():
            continue  # a missing target stays a broken link, which the strict build reports
        added.add(path)
        if path.endswith(".md"):
            stem = "repo/" + path[: -len(".md")]
            dest = f"{stem}/index.html" if config.use_directory_urls else f"{stem}.html"
            inclusion = InclusionLevel.NOT_IN_NAV
            todo |= linked_outside(f"../{path}", (root / path).read_text(encoding="utf-8"))
        else:
            dest, inclusion = f"repo/{path}", InclusionLevel.INCLUDED
        # src_uri "../benchmarks/..." is what MkDocs resolves the docs' links to; the file goes to `dest`.
        # The inclusion is explicit: MkDocs' default exclusion of dot paths (".*") would match the "..".
        files.append(File(f"../{path}", config.docs_dir, config.site_dir, config.use_directory_urls,
                          dest_uri=dest, inclusion=inclusion))
    return files
