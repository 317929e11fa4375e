"""Run Length Encoded patterns (the Life community's file format: Golly, LifeWiki), read and written.

A file is ``#`` comment lines (``#N`` name, ``#C``/``#c`` comments, ``#O`` author; every one is kept
as metadata), a header ``x = W, y = H[, rule = R]`` and a body of runs: ``[count]b`` dead cells,
``[count]o`` live cells, ``[count]$`` ends of rows, ``!`` the end. Rules may be written ``B3/S23``,
``S23/B3`` or in the older survival/birth order without letters (``23/3``). Only two-state,
life-like (outer totalistic, Moore neighbourhood) patterns can be run by this project; anything
else (Generations, isotropic non-totalistic, Larger than Life, hexagonal or von Neumann rules,
multi-state cells, a body larger than its header) is refused with a one-line ``RLEError``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import torch

from interfere.ca.rules import Rule, get_rule, parse_rule
from interfere.errors import UserError

LINE_WIDTH = 70  # the body's line length, as Golly writes it
_HEADER = re.compile(r"^\s*x\s*=\s*(\d+)\s*,\s*y\s*=\s*(\d+)\s*(?:,\s*rule\s*=\s*(\S+))?\s*$", re.IGNORECASE)
_RUN = re.compile(r"(\d*)([^\d\s])")
MAX_PATTERN_CELLS = 4096 * 4096  # a declared size above this is refused before its cells are allocated


class RLEError(UserError):
    """A pattern this project cannot read or run; the message names the problem."""


@dataclass
class Pattern:
    """A two-state pattern: its cells, its rule (if the file gave one) and the file's comment lines."""

    cells: torch.Tensor  # [height, width] int64, 0 dead / 1 alive
    rule: Rule | None = None
    comments: list[str] = field(default_factory=list)  # "#N Glider", "#C ...", in file order
    topology: str | None = None  # a Golly ":T64,64" style suffix of the rule, kept but not applied

    @property
    def name(self) -> str | None:
        return next((line[2:].strip() for line in self.comments if line.startswith("#N")), None)

    @property
    def height(self) -> int:
        return self.cells.shape[0]

    @property
    def width(self) -> int:
        return self.cells.shape[1]


def parse_rle_rule(text: str) -> tuple[Rule, str | None]:
    """A life-like rule from an RLE header, and its topology suffix if any; ``RLEError`` otherwise."""
    rule, _, topology = text.strip().partition(":")
    parts = rule.split("/")
    if re.search(r"^R\d|,", rule, re.IGNORECASE):
        raise RLEError(f"rule {text!r} is a Larger than Life rule; only life-like rules (e.g. B3/S23) can be run")
    if len(parts) == 3 or re.search(r"(^|/)C\d+|G\d+$", rule, re.IGNORECASE):
        raise RLEError(f"rule {text!r} is a Generations (multi-state) rule; only two-state life-like rules "
                       "(e.g. B3/S23) can be run")
    if re.search(r"[HV]$", rule, re.IGNORECASE) and not re.fullmatch(r"\d*/\d*", rule):
        raise RLEError(f"rule {text!r} is for a hexagonal or von Neumann neighbourhood; only Moore (life-like) "
                       "rules can be run")
    if re.search(r"\d[a-z-]", rule.replace("S", "").replace("s", "").replace("B", "").replace("b", "")):
        raise RLEError(f"rule {text!r} is non-totalistic (isotropic); only outer-totalistic life-like rules "
                       "(e.g. B3/S23) can be run")
    if len(parts) == 2 and all(re.fullmatch(r"[0-8]*", p) for p in parts):  # the old survival/birth order
        parts = [f"S{parts[0]}", f"B{parts[1]}"]
    try:
        return (parse_rule("/".join(parts)) if "/" in rule else get_rule(rule)), topology or None
    except ValueError as err:
        raise RLEError(f"rule {text!r} is not a life-like rule: {err}") from None


def parse_rle(text: str) -> Pattern:
    """Read an RLE pattern from its text; ``RLEError`` with the problem on one line."""
    lines = text.splitlines()
    comments = [line.rstrip() for line in lines if line.startswith("#")]
    rest = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    if not rest:
        raise RLEError("no 'x = W, y = H' header line: this is not an RLE pattern")
    header = _HEADER.match(rest[0])
    if header is None:
        raise RLEError(f"bad header line {rest[0][:60]!r}: expected 'x = W, y = H, rule = B3/S23'")
    width, height = int(header.group(1)), int(header.group(2))
    if width * height > MAX_PATTERN_CELLS:
        raise RLEError(f"the header declares x = {width}, y = {height} ({width * height:,} cells): patterns of at most "
                       f"{MAX_PATTERN_CELLS:,} cells (4096x4096) can be read")
    rule, topology = parse_rle_rule(header.group(3)) if header.group(3) else (None, None)
    cells = _body_cells("".join(rest[1:]), width, height)
    return Pattern(cells, rule, comments, topology)


def _body_cells(body: str, width: int, height: int) -> torch.Tensor:
    """The ``[height, width]`` cells of an RLE body (runs of ``b``/``o``, ``$`` rows, ``!`` end)."""
    body = body.split("!", 1)[0] if "!" in body else body
    compact = re.sub(r"\s+", "", body)
    cells = torch.zeros(height, width, dtype=torch.long)
    row = col = 0
    for count_text, tag in _RUN.findall(compact):
        count = int(count_text) if count_text else 1
        if tag == "$":
            row, col = row + count, 0
            continue
        if tag not in "bo":
            raise RLEError(f"cell state {tag!r} in the body: only two-state patterns (b dead, o alive) can be run")
        if row >= height or col + count > width:
            raise RLEError(f"the body runs past its declared size x = {width}, y = {height} "
                           f"(row {row + 1}, columns up to {col + count})")
        if tag == "o":
            cells[row, col : col + count] = 1
        col += count
    if re.search(r"\d$", compact):
        raise RLEError(f"the body ends in a run count without a cell state: {compact[-20:]!r}")
    return cells


def read_rle(path: str | Path) -> Pattern:
    """Read an RLE file; errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise RLEError(f"no pattern file at {path}")
    try:
        return parse_rle(path.read_text(errors="replace"))
    except RLEError as err:
        raise RLEError(f"{path}: {err}") from None


def _runs(row: list[int]) -> list[tuple[int, str]]:
    """Runs of one row with trailing dead cells dropped: ``[(count, 'b' | 'o'), ...]``."""
    while row and row[-1] == 0:
        row = row[:-1]
    runs: list[tuple[int, str]] = []
    for value in row:
        tag = "o" if value else "b"
        if runs and runs[-1][1] == tag:
            runs[-1] = (runs[-1][0] + 1, tag)
        else:
            runs.append((1, tag))
    return runs


def to_rle(pattern: Pattern) -> str:
    """The pattern as RLE text: its comment lines, the header, and the body in lines of <= 70 characters."""
    cells = pattern.cells.long()
    tokens: list[str] = []
    blank_rows = 0
    for r, row in enumerate(cells.tolist()):
        runs = _runs(row)
        if r > 0 and runs:
            tokens.append(f"{blank_rows + 1 if blank_rows else ''}$")
            blank_rows = 0
        elif r > 0:
            blank_rows += 1
        tokens += [f"{n if n > 1 else ''}{tag}" for n, tag in runs]
    tokens.append("!")
    lines, line = [], ""
    for token in tokens:
        if len(line) + len(token) > LINE_WIDTH:
            lines.append(line)
            line = ""
        line += token
    lines.append(line)
    rule = f", rule = {pattern.rule}{':' + pattern.topology if pattern.topology else ''}" if pattern.rule else ""
    header = f"x = {pattern.width}, y = {pattern.height}{rule}"
    return "\n".join([*pattern.comments, header, *lines]) + "\n"


def write_rle(pattern: Pattern, path: str | Path) -> Path:
    path = Path(path)
    path.write_text(to_rle(pattern))
    return path
