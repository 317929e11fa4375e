"""The explorer's web layer: FastAPI routes with validated requests over :class:`Engine`.

Every request carries the whole state it needs (rule bits, board), so the server keeps nothing per
user. Bad input gets a 4xx and ``{"error": "<one line>"}``; the server never reads or writes a
path a request names (the page and its script are package files, served by name).

The routes that run the model are ``async``: they run on the server's event loop, which uvicorn keeps
in the main thread, where torch ran this model's rollout 1.2-1.7x faster than in the worker threads
that serve plain routes (docs/experiments.md, "Real patterns at any size"). The engine's lock lets one
model request run at a time anyway.
"""

from __future__ import annotations

from importlib import resources

import torch
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, Field

from interfere.ca.patterns import centred, library_names, load_pattern
from interfere.ca.rle import Pattern, RLEError, parse_rle
from interfere.ca.rules import BIT_NAMES, N_RULE_BITS, NAMED_RULES, Rule, get_rule
from interfere.ca.simulate import step
from interfere.errors import UserError
from interfere.explore.components import parse_component
from interfere.explorer.engine import MAX_INSPECT_CELLS, Engine

STATIC = {"app.js": "text/javascript", "style.css": "text/css"}
MAX_GENS_PER_REQUEST = 64  # /api/run: generations computed per request while the page plays
DEFAULT_SIDE = 32  # the board a size-free checkpoint's page opens with


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


class RunRequest(StepRequest):
    gens: int = Field(ge=1, le=MAX_GENS_PER_REQUEST)


class RLERequest(BaseModel):
    text: str = Field(min_length=1, max_length=200_000, description="an RLE pattern file's text")
    height: int = Field(ge=1, le=256)
    width: int = Field(ge=1, le=256)


class Checks:
    """Turns a request's raw fields into tensors the engine takes, or a one-line :class:`UserError`."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @staticmethod
    def bits(values: list[int]) -> torch.Tensor:
        if any(v not in (0, 1) for v in values):
            raise UserError("rule bits must be 0 or 1")
        return torch.tensor(values, dtype=torch.bool)

    def size(self, height: int, width: int) -> None:
        model = self.engine.model
        if (height in self.engine.sides and width in self.engine.sides) if model.size_free \
                else (height, width) == model.built_size:
            return
        allowed = ", ".join(f"{s}x{s}" for s in self.engine.sides)
        kind = "this size-free checkpoint's sizes" if model.size_free else "this checkpoint's size"
        raise UserError(f"the board must be {allowed} ({kind}), got {height}x{width}")

    def board(self, rows: list[list[int]]) -> torch.Tensor:
        if any(len(r) != len(rows[0]) for r in rows):
            raise UserError("the board's rows must all have the same length")
        self.size(len(rows), len(rows[0]))
        board = torch.tensor(rows, dtype=torch.long)
        if ((board != 0) & (board != 1)).any():
            raise UserError("board cells must be 0 or 1")
        return board

    def boards(self, model_rows: list[list[int]], sim_rows: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        model_board, sim_board = self.board(model_rows), self.board(sim_rows)
        if model_board.shape != sim_board.shape:
            raise UserError("the model's and the simulator's boards must have the same size")
        return model_board, sim_board

    @staticmethod
    def inspectable(board: torch.Tensor) -> torch.Tensor:
        if board.numel() > MAX_INSPECT_CELLS:
            raise UserError(f"attention and head switches run the hooked forward (up to {MAX_INSPECT_CELLS} cells): "
                            f"choose a board of 32x32 or smaller to inspect, not {board.shape[0]}x{board.shape[1]}")
        return board

    def placed(self, pattern: Pattern, height: int, width: int) -> dict:
        """The pattern in the middle of a board of this size, with its rule (if it has one)."""
        self.size(height, width)
        try:
            board = centred(pattern, height, width)
        except RLEError as err:
            raise UserError(str(err)) from None
        rule = pattern.rule
        return {"board": board.tolist(), "name": pattern.name, "rule": str(rule) if rule else None,
                "bits": rule.bits.long().tolist() if rule else None}


def create_app(engine: Engine, provenance: dict) -> FastAPI:
    """The explorer for one model; ``provenance`` (run id, step, checkpoint) is shown on the page."""
    app = FastAPI(title="interfere explorer", docs_url=None, redoc_url=None, openapi_url=None)
    _add_error_handlers(app)
    _add_page_routes(app, engine, provenance)
    _add_board_routes(app, engine, Checks(engine))
    _add_inspection_routes(app, engine, Checks(engine))
    return app


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(UserError)
    async def user_error(request: Request, err: UserError) -> JSONResponse:
        return JSONResponse({"error": str(err)}, status_code=400)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, err: RequestValidationError) -> JSONResponse:
        first = err.errors()[0] if err.errors() else {"loc": (), "msg": "invalid request"}
        where = ".".join(str(x) for x in first.get("loc", ()) if x != "body")
        return JSONResponse({"error": f"{where + ': ' if where else ''}{first.get('msg', 'invalid request')}"},
                            status_code=422)


def _add_page_routes(app: FastAPI, engine: Engine, provenance: dict) -> None:
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
        model = engine.model
        named = {name: {"rule": str(r), "bits": r.bits.long().tolist()} for name, r in NAMED_RULES.items()}
        height, width = (DEFAULT_SIDE, DEFAULT_SIDE) if model.size_free else model.built_size
        return {**provenance, "height": height, "width": width, "size_free": model.size_free, "sides": engine.sides,
                "max_inspect_cells": MAX_INSPECT_CELLS, "max_gens": MAX_GENS_PER_REQUEST,
                "n_layers": model.cfg.n_layers, "n_heads": model.cfg.n_heads, "bit_names": list(BIT_NAMES),
                "routes": engine.thresholds is not None,
                "named_rules": named, "patterns": library_names()}

    @app.post("/api/rule")
    def rule(req: RuleRequest) -> dict:
        try:
            parsed = get_rule(req.text)
        except ValueError as err:
            raise UserError(str(err).splitlines()[0]) from None
        return {"rule": str(parsed), "name": parsed.name, "bits": parsed.bits.long().tolist()}


def _add_board_routes(app: FastAPI, engine: Engine, check: Checks) -> None:
    @app.get("/api/pattern/{name}")
    def pattern(name: str, height: int | None = None, width: int | None = None) -> dict:
        if name not in library_names():
            raise UserError(f"unknown pattern {name!r}; choose from {', '.join(library_names())}")
        own = engine.model.layout
        return check.placed(load_pattern(name), height or own.height, width or own.width)

    @app.post("/api/rle")
    def rle(req: RLERequest) -> dict:
        """A pasted or uploaded RLE pattern, in the middle of a board of the asked size, with its rule."""
        try:
            parsed = parse_rle(req.text)
        except RLEError as err:
            raise UserError(str(err)) from None
        return check.placed(parsed, req.height, req.width)

    @app.post("/api/step")
    async def step_both(req: StepRequest) -> dict:
        bits = check.bits(req.bits)
        model_board, sim_board = check.boards(req.model_board, req.sim_board)
        nxt, prob = engine.predict(bits, model_board)
        truth = step(sim_board[None], bits[None])[0]
        return {"model": nxt.tolist(), "simulator": truth.tolist(), "prob_alive": prob.tolist(),
                "wrong": (nxt != truth).long().tolist(), "rule": str(Rule.from_bits(bits))}

    @app.post("/api/run")
    async def run(req: RunRequest) -> JSONResponse:
        """``gens`` generations at once (the page plays them): the model's rollout and the simulator's.
        Plain lists of ints, so the reply skips FastAPI's per-item encoder (at 64x64, 21.5 -> 25.5 generations/s)."""
        return JSONResponse(engine.run(check.bits(req.bits), *check.boards(req.model_board, req.sim_board), req.gens))


def _add_inspection_routes(app: FastAPI, engine: Engine, check: Checks) -> None:
    @app.post("/api/attention")
    async def attention(req: CellRequest) -> dict:
        board = check.inspectable(check.board(req.board))
        if not (0 <= req.row < board.shape[0] and 0 <= req.col < board.shape[1]):
            raise UserError(f"cell ({req.row}, {req.col}) is outside the {board.shape[0]}x{board.shape[1]} board")
        return {"layers": engine.attention(check.bits(req.bits), board, req.row, req.col)}

    @app.post("/api/route")
    async def route(req: CellRequest) -> dict:
        """The clicked cell's case and the route that case takes in this model (the lookup map, computed once)."""
        board = check.board(req.board)
        if not (0 <= req.row < board.shape[0] and 0 <= req.col < board.shape[1]):
            raise UserError(f"cell ({req.row}, {req.col}) is outside the {board.shape[0]}x{board.shape[1]} board")
        return engine.route(board, req.row, req.col)

    @app.post("/api/flip")
    async def flip(req: FlipRequest) -> dict:
        return {"bit": BIT_NAMES[req.bit], **engine.flip(check.bits(req.bits), check.board(req.board), req.bit)}

    @app.post("/api/heads_off")
    async def heads_off(req: HeadsRequest) -> dict:
        try:
            heads = [parse_component(h, engine.model) for h in req.heads]
        except ValueError as err:
            raise UserError(str(err)) from None
        if any(h.head is None for h in heads):
            raise UserError("only heads (LxHy) can be switched off here")
        return engine.with_heads_off(check.bits(req.bits), check.inspectable(check.board(req.board)), heads)
