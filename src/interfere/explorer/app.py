"""The explorer's web layer: FastAPI routes with validated requests over :class:`Engine`.

Every request carries the whole state it needs (rule bits, board), so the server keeps nothing per
user. Bad input gets a 4xx and ``{"error": "<one line>"}``; the server never reads or writes a
path a request names (the page and its script are package files, served by name).
"""

from __future__ import annotations

from importlib import resources

import torch
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, Field

from interfere.ca.patterns import PATTERNS, place
from interfere.ca.rules import BIT_NAMES, N_RULE_BITS, NAMED_RULES, Rule, get_rule
from interfere.ca.simulate import step
from interfere.explore.components import parse_component
from interfere.explorer.engine import Engine

STATIC = {"app.js": "text/javascript", "style.css": "text/css"}


class UserError(ValueError):
    """A request the user can fix: answered with 400 and its one-line message."""


class State(BaseModel):
    bits: list[int] = Field(min_length=N_RULE_BITS, max_length=N_RULE_BITS, description="S0..S8, B0..B8 as 0/1")
    board: list[list[int]] = Field(min_length=1, max_length=256, description="rows of 0/1 cells")


class StepRequest(BaseModel):
    bits: list[int] = Field(min_length=N_RULE_BITS, max_length=N_RULE_BITS)
    model_board: list[list[int]] = Field(min_length=1, max_length=256)
    sim_board: list[list[int]] = Field(min_length=1, max_length=256)


class CellRequest(State):
    row: int
    col: int


class FlipRequest(State):
    bit: int = Field(ge=0, lt=N_RULE_BITS)


class HeadsRequest(State):
    heads: list[str] = Field(max_length=256)


class RuleRequest(BaseModel):
    text: str = Field(max_length=100)


def create_app(engine: Engine, provenance: dict) -> FastAPI:
    """The explorer for one model; ``provenance`` (run id, step, checkpoint) is shown on the page."""
    app = FastAPI(title="interfere explorer", docs_url=None, redoc_url=None, openapi_url=None)
    layout = engine.model.layout

    def bits_of(values: list[int]) -> torch.Tensor:
        if any(v not in (0, 1) for v in values):
            raise UserError("rule bits must be 0 or 1")
        return torch.tensor(values, dtype=torch.bool)

    def board_of(rows: list[list[int]]) -> torch.Tensor:
        if len(rows) != layout.height or any(len(r) != layout.width for r in rows):
            raise UserError(f"the board must be {layout.height}x{layout.width} (this checkpoint's size)")
        board = torch.tensor(rows, dtype=torch.long)
        if ((board != 0) & (board != 1)).any():
            raise UserError("board cells must be 0 or 1")
        return board

    @app.exception_handler(UserError)
    async def user_error(request: Request, err: UserError) -> JSONResponse:
        return JSONResponse({"error": str(err)}, status_code=400)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, err: RequestValidationError) -> JSONResponse:
        first = err.errors()[0] if err.errors() else {"loc": (), "msg": "invalid request"}
        where = ".".join(str(x) for x in first.get("loc", ()) if x != "body")
        return JSONResponse({"error": f"{where + ': ' if where else ''}{first.get('msg', 'invalid request')}"},
                            status_code=422)

    @app.get("/", response_class=HTMLResponse)
    def index() -> str:
        return resources.files("interfere.explorer").joinpath("static/index.html").read_text()

    @app.get("/static/{name}")
    def static(name: str) -> Response:
        if name not in STATIC:  # only the package's own files, by name
            return JSONResponse({"error": f"no file {name!r}"}, status_code=404)
        text = resources.files("interfere.explorer").joinpath(f"static/{name}").read_text()
        return Response(text, media_type=STATIC[name])

    @app.get("/api/info")
    def info() -> dict:
        named = {name: {"rule": str(r), "bits": r.bits.long().tolist()} for name, r in NAMED_RULES.items()}
        return {**provenance, "height": layout.height, "width": layout.width, "n_layers": engine.model.cfg.n_layers,
                "n_heads": engine.model.cfg.n_heads, "bit_names": list(BIT_NAMES), "named_rules": named,
                "patterns": sorted(PATTERNS)}

    @app.post("/api/rule")
    def rule(req: RuleRequest) -> dict:
        try:
            parsed = get_rule(req.text)
        except ValueError as err:
            raise UserError(str(err).splitlines()[0]) from None
        return {"rule": str(parsed), "name": parsed.name, "bits": parsed.bits.long().tolist()}

    @app.get("/api/pattern/{name}")
    def pattern(name: str) -> dict:
        if name not in PATTERNS:
            raise UserError(f"unknown pattern {name!r}; choose from {', '.join(sorted(PATTERNS))}")
        try:
            board = place(name, layout.height, layout.width, layout.height // 2 - 1, layout.width // 2 - 1)
        except ValueError as err:
            raise UserError(str(err).splitlines()[0]) from None
        return {"board": board.long().tolist()}

    @app.post("/api/step")
    def step_both(req: StepRequest) -> dict:
        bits = bits_of(req.bits)
        model_board, sim_board = board_of(req.model_board), board_of(req.sim_board)
        nxt, prob = engine.predict(bits, model_board)
        truth = step(sim_board[None], bits[None])[0]
        return {"model": nxt.tolist(), "simulator": truth.tolist(), "prob_alive": prob.tolist(),
                "wrong": (nxt != truth).long().tolist(), "rule": str(Rule.from_bits(bits))}

    @app.post("/api/attention")
    def attention(req: CellRequest) -> dict:
        if not (0 <= req.row < layout.height and 0 <= req.col < layout.width):
            raise UserError(f"cell ({req.row}, {req.col}) is outside the {layout.height}x{layout.width} board")
        return {"layers": engine.attention(bits_of(req.bits), board_of(req.board), req.row, req.col)}

    @app.post("/api/flip")
    def flip(req: FlipRequest) -> dict:
        return {"bit": BIT_NAMES[req.bit], **engine.flip(bits_of(req.bits), board_of(req.board), req.bit)}

    @app.post("/api/heads_off")
    def heads_off(req: HeadsRequest) -> dict:
        try:
            heads = [parse_component(h, engine.model) for h in req.heads]
        except ValueError as err:
            raise UserError(str(err)) from None
        if any(h.head is None for h in heads):
            raise UserError("only heads (LxHy) can be switched off here")
        return engine.with_heads_off(bits_of(req.bits), board_of(req.board), heads)

    return app
