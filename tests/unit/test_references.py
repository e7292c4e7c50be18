"""The bibliography: every citation in src/ and docs/ has an entry, `expand` names the papers, and
`critix list` shows the names."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from critix import references
from critix.cli import main
from critix.references import PAPERS, expand

ROOT = Path(__file__).resolve().parents[2]
REFERENCES_MD = ROOT / "docs" / "references.md"
# "Schaul et al. 2016", "Fujimoto & Gu 2021", "van Hasselt et al. 2016" -> (surname, year)
AUTHOR_YEAR = re.compile(r"([A-Z][A-Za-z-]+)(?: et al\.| & [A-Z][A-Za-z-]+),? ((?:19|20)\d\d)")


def cited_sources() -> list[Path]:
    """Every file whose citations must resolve: the package's Python and the docs' Markdown."""
    return sorted((ROOT / "src" / "critix").rglob("*.py")) + sorted((ROOT / "docs").rglob("*.md"))


def cited_numbers(paths: list[Path]) -> dict[int, list[str]]:
    """number -> the files citing it as "#N"."""
    found: dict[int, list[str]] = {}
    for path in paths:
        for match in references.CITATION.finditer(path.read_text(encoding="utf-8")):
            name = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
            files = found.setdefault(int(match.group(1)), [])
            if str(name) not in files:
                files.append(str(name))
    return found


def documented_numbers() -> set[int]:
    """The numbers with an entry ("- **#N** ...") in docs/references.md."""
    return {int(n) for n in re.findall(r"^- \*\*#(\d+)\*\*", REFERENCES_MD.read_text(encoding="utf-8"), re.M)}


def test_the_scan_sees_the_code_and_the_docs() -> None:
    found = cited_numbers(cited_sources())
    assert {53, 98, 217} <= set(found)  # SAC v2, TD3, C51: cited in many places
    assert any(f.startswith("src/") for f in found[98]) and any(f.startswith("docs/") for f in found[98])


def test_a_new_citation_without_an_entry_is_caught(tmp_path: Path) -> None:
    module = tmp_path / "new_agent.py"
    module.write_text('"""A new loss (#999 Eq. 3) after SAC (#53); "#0072B2", "## 2" are no citations."""')
    assert set(cited_numbers([module])) == {999, 53}
    assert set(cited_numbers([module])) - set(PAPERS) == {999}


def test_every_numbered_citation_has_an_entry() -> None:
    found = cited_numbers(cited_sources())
    missing_in_module = {n: files for n, files in found.items() if n not in PAPERS}
    assert not missing_in_module, f"cited but not in critix.references.PAPERS: {missing_in_module}"
    documented = documented_numbers()
    missing_in_md = {n: files for n, files in found.items() if n not in documented}
    assert not missing_in_md, f"cited but without an entry in docs/references.md: {missing_in_md}"


def test_module_and_markdown_list_the_same_papers() -> None:
    assert documented_numbers() == set(PAPERS)
    text = REFERENCES_MD.read_text(encoding="utf-8")
    for paper in PAPERS.values():
        entry = re.search(rf"^- \*\*#{paper.number}\*\*.*?(?=^- |^#|\Z)", text, re.M | re.S)
        assert entry is not None
        assert paper.authors.split()[0] in entry.group(0) and str(paper.year) in entry.group(0), paper


def test_every_author_year_citation_has_an_entry() -> None:
    entries = re.split(r"\n(?=- )", REFERENCES_MD.read_text(encoding="utf-8"))
    missing = set()
    for path in cited_sources():
        for surname, year in AUTHOR_YEAR.findall(path.read_text(encoding="utf-8")):
            if not any(surname in entry and year in entry for entry in entries):
                missing.add(f"{surname} {year} ({path.relative_to(ROOT)})")
    assert not missing, f"author-year citations without an entry in docs/references.md: {sorted(missing)}"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("(#53 Table 1)",
         '(#53 Haarnoja et al. 2018, "Soft Actor-Critic Algorithms and Applications" Table 1)'),
        ("see #4242.", "see #4242."),  # unknown number: left alone
        ("(#50, #98)",
         '(#50 Haarnoja et al. 2018, "Soft Actor-Critic: Off-Policy Maximum Entropy Deep RL with a '
         'Stochastic Actor", #98 Fujimoto et al. 2018, "Addressing Function Approximation Error in '
         'Actor-Critic Methods")'),
        ("#0", '#0 Sikchi et al. 2024, "Dual RL: Unification and New Methods for Reinforcement and Imitation '
               'Learning"'),
        ("#7 Eq. 1 and #7 Sec. 4",  # a number is named once per text
         '#7 Farebrother et al. 2024, "Stop Regressing: Training Value Functions via Classification for '
         'Scalable Deep RL" Eq. 1 and #7 Sec. 4'),
        ("issue # 53, #x, #, C#", "issue # 53, #x, #, C#"),  # "#" not followed by digits
        ("colour #0072B2, black #000000, #56B4E9", "colour #0072B2, black #000000, #56B4E9"),
        ("# Title\n## 2. Section\n### 217", "# Title\n## 2. Section\n### 217"),  # markdown headings
        ("page.md#53 and &#53;", "page.md#53 and &#53;"),  # URL fragment, HTML entity
        ("", ""),
    ],
)
def test_expand(text: str, expected: str) -> None:
    assert expand(text) == expected


def test_critix_list_names_the_papers(capsys: pytest.CaptureFixture[str],
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "400")  # one table row per line; the check below also survives wrapping
    assert main(["list", "sac"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "Soft Actor-Critic Algorithms and Applications" in out  # #53, the title and the field docs
    assert "Soft Actor-Critic: Off-Policy Maximum Entropy Deep RL with a Stochastic Actor" in out  # #50
    assert "Stop Regressing" in out  # #7, in the --num-bins and --hl-gauss-sigma docs
