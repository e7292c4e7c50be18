"""The papers critix cites by number ("#53") in docstrings, config field docs and `critix list` summaries.

A number alone means nothing to a reader without the project's reference list, so `expand` names the paper
next to it wherever the CLI shows such a text. docs/references.md gives every paper in full (authors, venue,
arXiv id, where critix uses it); tests/unit/test_references.py keeps the two and the code's citations in step.
This module is the lowest layer: it imports nothing from critix.
"""

from __future__ import annotations

import dataclasses
import re


@dataclasses.dataclass(frozen=True)
class Paper:
    """One numbered reference: short author form ("Haarnoja et al."), year and a short title."""

    number: int
    authors: str
    year: int
    title: str

    def cite(self) -> str:
        """'Haarnoja et al. 2018, "Soft Actor-Critic Algorithms and Applications"'."""
        return f'{self.authors} {self.year}, "{self.title}"'


_PAPERS = (
    Paper(0, "Sikchi et al.", 2024,
          "Dual RL: Unification and New Methods for Reinforcement and Imitation Learning"),
    Paper(7, "Farebrother et al.", 2024,
          "Stop Regressing: Training Value Functions via Classification for Scalable Deep RL"),
    Paper(50, "Haarnoja et al.", 2018,
          "Soft Actor-Critic: Off-Policy Maximum Entropy Deep RL with a Stochastic Actor"),
    Paper(53, "Haarnoja et al.", 2018, "Soft Actor-Critic Algorithms and Applications"),
    Paper(55, "Christodoulou", 2019, "Soft Actor-Critic for Discrete Action Settings"),
    Paper(63, "Kostrikov et al.", 2020,
          "Image Augmentation Is All You Need: Regularizing Deep RL from Pixels"),
    Paper(66, "Hiraoka et al.", 2022, "Dropout Q-Functions for Doubly Efficient Reinforcement Learning"),
    Paper(78, "Hansen-Estruch et al.", 2023,
          "IDQL: Implicit Q-Learning as an Actor-Critic Method with Diffusion Policies"),
    Paper(81, "Lillicrap et al.", 2016, "Continuous control with deep reinforcement learning"),
    Paper(85, "Mnih et al.", 2016, "Asynchronous Methods for Deep Reinforcement Learning"),
    Paper(98, "Fujimoto et al.", 2018, "Addressing Function Approximation Error in Actor-Critic Methods"),
    Paper(217, "Bellemare et al.", 2017, "A Distributional Perspective on Reinforcement Learning"),
    Paper(221, "Wang et al.", 2016, "Dueling Network Architectures for Deep Reinforcement Learning"),
    Paper(240, "Schulman et al.", 2016,
          "High-Dimensional Continuous Control Using Generalized Advantage Estimation"),
)
PAPERS: dict[int, Paper] = {p.number: p for p in _PAPERS}

# "#53", "(#7 Sec. 4)", "#217." - but not a colour ("#0072B2", "#000000"), a heading ("## 2"), an HTML entity
# ("&#38;") or a URL fragment ("page.md#1"): no word character, "#" or "&" before, no word character after.
CITATION = re.compile(r"(?<![\w#&])#(0|[1-9][0-9]*)(?!\w)")


def expand(text: str) -> str:
    """`text` with the first "#N" of each known number followed by its paper: "#53" becomes
    '#53 Haarnoja et al. 2018, "Soft Actor-Critic Algorithms and Applications"'. Later mentions of the same
    number stay "#N" (the name was just given); unknown numbers and anything that is not a citation stay as
    they are."""
    seen: set[int] = set()

    def name(match: re.Match[str]) -> str:
        number = int(match.group(1))
        if number not in PAPERS or number in seen:
            return match.group(0)
        seen.add(number)
        return f"{match.group(0)} {PAPERS[number].cite()}"

    return CITATION.sub(name, text)
