"""The report's page: ``report.html`` (self-contained, images embedded), ``report.md`` and ``summary.json``.

Everything on the page is rendered from the summary the report measured (:mod:`interfere.report`): the
verdict table, one section per hypothesis with its numbers, thresholds and controls, the algorithm card
rendered from the ``algorithm`` account, when each piece forms, the model card, and a table of the
seconds each section took.
"""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path

from interfere.explore.abstraction import AT_THE_ANSWER, cases_by_site
from interfere.explore.account.card import case_span
from interfere.report.verdicts import HYPOTHESES, REFUTATIONS

STYLE = """body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:1100px;margin:2em auto;
color:#222;line-height:1.45;padding:0 1em}h1{margin-bottom:0}table{border-collapse:collapse;margin:1em 0}
td,th{border-bottom:1px solid #ddd;padding:4px 10px;text-align:left;vertical-align:top}
.supported{color:#1b7f3b;font-weight:600}.not-supported{color:#b3261e;font-weight:600}
.inconclusive{color:#a26b00;font-weight:600}.warn{background:#fde8e8;color:#b3261e;padding:.8em;border-radius:6px;
font-weight:600}img{max-width:100%;margin:.5em 0}code,pre{background:#f5f3ef;padding:2px 4px;border-radius:3px}
pre{padding:.8em;overflow-x:auto}.muted{color:#777;font-size:.9em}"""




IMAGE_TYPES = {".png": "image/png", ".gif": "image/gif"}  # what the page embeds (an MP4 stays a file beside it)


class Page:
    """One body written twice: as HTML (images embedded, no network) or Markdown (images linked)."""

    def __init__(self, out: Path, embed: bool) -> None:
        self.out, self.embed, self.parts = out, embed, []

    def esc(self, text: str) -> str:
        return html.escape(text) if self.embed else text

    def heading(self, level: int, text: str) -> None:
        self.parts.append(f"<h{level}>{self.esc(text)}</h{level}>" if self.embed else f"{'#' * level} {text}\n")

    def para(self, text: str, cls: str = "") -> None:
        self.parts.append(f'<p class="{cls}">{self.esc(text)}</p>' if self.embed else f"{text}\n")

    def warn(self, text: str) -> None:
        self.parts.append(f'<p class="warn">{self.esc(text)}</p>' if self.embed else f"> **{text}**\n")

    def items(self, lines: list[str]) -> None:
        self.parts.append(("<ol>" + "".join(f"<li>{self.esc(x)}</li>" for x in lines) + "</ol>") if self.embed
                          else "\n".join(f"{i + 1}. {x}" for i, x in enumerate(lines)) + "\n")

    def pre(self, text: str) -> None:
        self.parts.append(f"<pre>{self.esc(text)}</pre>" if self.embed else f"```\n{text}\n```\n")

    def image(self, path: Path) -> None:
        if path.suffix not in IMAGE_TYPES:
            raise ValueError(f"{path.name} is not an image the page can show ({', '.join(IMAGE_TYPES)})")
        if self.embed:
            mime = IMAGE_TYPES[path.suffix]
            data = base64.b64encode(path.read_bytes()).decode()
            self.parts.append(f'<img src="data:{mime};base64,{data}" alt="{html.escape(path.name)}">')
        else:
            self.parts.append(f"![{path.name}]({path.relative_to(self.out)})\n")

    def table(self, header: list[str], rows: list[list[str]]) -> None:
        if self.embed:
            self.parts.append("<table><tr>" + "".join(f"<th>{html.escape(x)}</th>" for x in header) + "</tr>"
                              + "".join("<tr>" + "".join(f"<td>{html.escape(x)}</td>" for x in row) + "</tr>"
                                        for row in rows) + "</table>")
        else:
            self.parts.append("\n".join(["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
                                         + ["| " + " | ".join(row) + " |" for row in rows]) + "\n")

    def text(self) -> str:
        return "\n".join(self.parts)


def write_report(out: Path, summary: dict, figures: dict[str, list[Path]], card: dict, eval_table: str) -> None:
    """``report.html`` (self-contained), ``report.md`` and ``summary.json`` into ``out``."""
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    body = render(Page(out, embed=True), summary, figures, card, eval_table)
    (out / "report.html").write_text(f'<!doctype html><html><head><meta charset="utf-8"><title>interfere report'
                                     f"</title><style>{STYLE}</style></head><body>{body}</body></html>")
    (out / "report.md").write_text(render(Page(out, embed=False), summary, figures, card, eval_table))


OWN_SECTIONS = ("how", "forms", "abstraction")  # the sections the page renders with their own text


def render(page: Page, summary: dict, figures: dict[str, list[Path]], card: dict, eval_table: str) -> str:
    """The report body, section by section."""
    header(page, summary)
    for h in summary["verdicts"]:
        hypothesis_section(page, summary, h, figures.get(h, []))
    for section, figs in figures.items():  # an analysis registered under a section of its own
        if section not in (*summary["verdicts"], *OWN_SECTIONS) and figs:
            page.heading(2, section)
            for fig in figs:
                page.image(fig)
    how_section(page, summary, figures["how"])
    forms_section(page, summary, figures["forms"])
    abstraction_section(page, summary, figures.get("abstraction", []))
    page.heading(2, "Model card")
    page.pre(card["text"])
    page.pre(eval_table)
    for fig in card["animations"]:
        page.image(fig)
    page.heading(2, "Time")
    page.table(["section", "seconds"], [[k, f"{v:.1f}"] for k, v in summary["section_seconds"].items()]
               + [["total", f"{summary['seconds']:.1f}"]])
    page.heading(2, "Reproduce")
    page.pre(card["reproduce"])
    return page.text()


def header(page: Page, summary: dict) -> None:
    page.heading(1, "interfere: hypothesis report")
    page.para(f"checkpoint {summary['checkpoint']} (weights sha256 {summary['weights_sha256']}, "
              f"run {summary['run_id']}, step {summary['step']}), "
              f"data seeds {summary['seeds']}, {summary['date']}, CPU/device: {summary['device']}; threads: "
              + ", ".join(f"{k} {v}" for k, v in summary["threads"].items()), "muted")
    acc = summary["heldout"]["cell_acc"]
    if acc < summary["thresholds"]["min_heldout_acc"]:
        page.warn(f"Warning: held-out cell accuracy is {100 * acc:.2f}%, below "
                  f"{100 * summary['thresholds']['min_heldout_acc']:.0f}%: the model has not learned the task, "
                  "so these analyses describe a model that does not compute the rule.")
    page.heading(2, "Verdicts")
    page.parts.append(verdict_table(summary, page.embed))
    page.para(f"Held-out cell accuracy {100 * acc:.3f}% on {summary['heldout']['cells']:,} cells "
              f"({summary['heldout']['n_rules']} random rules never trained on).")
    page.para(controls_note(summary), "muted")


def hypothesis_section(page: Page, summary: dict, h: str, figures: list[Path]) -> None:
    v = summary["verdicts"][h]
    page.heading(2, f"{h}: {v['verdict']}")
    page.para(HYPOTHESES[h])
    page.para("Measured: " + " | ".join(v["reasons"]))
    for label, control in summary["controls"].items():
        c = control["verdicts"][h]
        page.para(f"Control, {label} ({control['run_id']}): {c['verdict']}; {c['reason']}", "muted")
    page.para("Threshold: " + ", ".join(f"{k} = {x}" for k, x in summary["thresholds"][h.lower()].items()))
    page.para(f"Not supported means: {REFUTATIONS[h]}.", "muted")
    page.para(READINGS[h], "muted")
    if h == "H4" and summary.get("h4_by_layer"):
        page.table(LAYER_HEADER, layer_rows(summary["h4_by_layer"]))  # the first data seed
    for fig in figures:
        page.image(fig)


LAYER_HEADER = ["layer", "locality (8-neighbour share)", "own cell", "off the board", "next-state AUC after",
                "count R2 after", "logit lens after", "attention removed", "MLP removed", "it and all later removed"]


def layer_rows(by_layer: dict) -> list[list[str]]:
    """H4's table layer by layer (``LAYER_HEADER``): locality, probes, logit lens, and what removing the layer costs;
    the report's and ``python -m interfere depth``'s."""
    formats = [("locality", "{:.3f}"), ("own", "{:.3f}"), ("off_board", "{:.3f}"), ("next_auc", "{:.3f}"),
               ("count_r2", "{:.2f}"), *((k, "{:.2%}") for k in ("lens_acc", "attention_removed", "mlp_removed",
                                                                  "from_layer_removed"))]
    return [[f"L{i}", *(form.format(by_layer[key][i]) for key, form in formats)]
            for i in range(len(by_layer["locality"]))]


def how_section(page: Page, summary: dict, figures: list[Path]) -> None:
    how = summary["how"]
    if not how:
        page.heading(2, "How the model computes: not run")
        page.para("Skipped at this size on a CPU: the interchange tests need a GPU (explorations/circuit.py).")
        return
    page.heading(2, f"How the model computes: {how['verdict']}")
    page.para("The algorithm card, rendered from the account (summary.json, 'algorithm'). First the lookup map: one "
              "rule bit flipped at a time, where each case's governing bit enters, which slot looks it up (the first "
              "that carries its flips and moves more at the governed cells than at the other cells of their state), "
              "which relay it and the read-out. Then each readable slot's coarsest role in input variables that "
              "survived an interchange test (its output taken from a donor cell that agrees on those variables), "
              "next to an answer-carrying control (a donor that agrees on the answer under another rule: a slot "
              "that passes it relays the answer, and the map says where it was made); slots no path can carry to a "
              "target are left out by construction. Then the account with every role at once, heads idealised by "
              "templates written from the inputs, and the read-out's neurons.")
    page.items(how["card"])
    built = summary.get("built_vs_found")
    if built:
        page.para(f"This model was written by hand, so its algorithm is known: the lookup map finds "
                  f"{built['routes']['matched']} of {built['routes']['of']} cases' routes as built, the roles "
                  f"{built['roles']['matched']} of {built['roles']['of']} slots (and "
                  f"{len(built['roles']['forced'])} more fixed by construction)"
                  + (f"; differing: {', '.join(built['routes']['mismatches'] + built['roles']['mismatches'])}"
                     if built["routes"]["mismatches"] or built["roles"]["mismatches"] else "") + ".")
    page.para(f"Verdict: {how['verdict']}: {how['verdict_reason']}. Minimal circuit ({how['circuit_search']}): "
              f"{', '.join(how['circuit'])}, {100 * how['circuit_acc']:.2f}% with every other component mean-ablated.")
    page.para("Threshold: " + ", ".join(f"{k} = {x}" for k, x in summary["thresholds"]["circuit"].items()))
    page.para("Not supported means: all roles at once keep less than refute_acc. Inconclusive: the account or the "
              "board roles alone miss their bar, a slot is left unexplained, or the map locates no lookup for some "
              "case.", "muted")
    for fig in figures:
        page.image(fig)


def abstraction_section(page: Page, summary: dict, figures: list[Path]) -> None:
    """Where the algorithm's variables live (``--abstraction``): per variable and group of cases, the earliest site
    that holds it with its rank; every head idealised with the aligned bit."""
    found = summary.get("abstraction")
    if not found:
        return
    page.heading(2, "Where the variables live: the causal abstraction")
    page.para("Each variable of the high-level model (own, count, case, the governing bit) searched at every site by "
              "distributed alignment search: a linear subspace of the site, learned on training rules, whose "
              "interchange from a source cell moves the prediction to the high-level model's counterfactual on "
              "held-out rules (IIA on changed pairs). A site holds a variable for a group of cases when the IIA "
              "reaches the claim and two controls pass: the full vector at the same site (a subspace may not beat "
              "it) and a control causal model (a fixed random bit of rule and case); the random-init model's IIA is "
              "reported. Sites at the rule tokens carry the input and are listed, never 'earliest'; nor is the "
              "residual at a target after the last attention for the bit: a model right on a cell holds its answer "
              "there by construction.")
    rows = []
    for variable, v in found["variables"].items():
        by_site = cases_by_site(v["by_case"])
        rows += [[variable, case_span(cases), f"{site} (rank {rank})"] for site, (cases, rank) in by_site.items()]
        if v.get("only_at_the_answer"):
            rows.append([variable, case_span(v["only_at_the_answer"]), AT_THE_ANSWER])
        rows += [] if by_site or v.get("only_at_the_answer") else [[variable, "-", "no site passes"]]
    page.table(["variable", "cases", "earliest site that holds it"], rows)
    joint = found.get("joint") or {}
    if joint.get("iia") is not None:
        page.para(f"The bit intervened at once at every site that holds it ({', '.join(joint['sites'])}): "
                  f"{100 * joint['iia']:.2f}% of {joint['pairs']} changed pair cells take the source's bit (base "
                  f"rate {100 * joint['base_rate']:.1f}%; random subspaces of the same ranks "
                  f"{100 * joint['iia_random_subspaces']:.1f}%).")
    if found.get("all_heads_aligned") is not None:
        heads = found["heads"]
        page.para(f"Every head idealised at once with case-conditional templates: "
                  f"{100 * heads['all_heads_case_conditional']:.2f}%; with the aligned governing bit given to the "
                  f"templates of heads whose attention follows the answer (where the map holds the bit before them): "
                  f"{100 * found['all_heads_aligned']:.2f}% (held-out accuracy).")
    for fig in figures:
        page.image(fig)


def forms_section(page: Page, summary: dict, figures: list[Path]) -> None:
    forms = summary["forms"]
    if not forms:
        return
    page.heading(2, "When each piece forms")
    page.para(f"Measured on the run's {len(forms['steps'])} training snapshots (steps {forms['steps'][0]} to "
              f"{forms['steps'][-1]}). A measure forms when it has covered {forms['fraction']:.0%} of the way from "
              "its first to its final value; in order: " + "; ".join(forms["order"]) + ". Accuracy first crosses "
              + ", ".join(f"{k} at step {v}" for k, v in forms["accuracy_first_crosses"].items() if v is not None)
              + ".")
    if forms.get("by_layer"):
        def cell(row: dict, name: str) -> str:
            step = row[f"{name}_forms"]
            return f"{row[name]:.3f}" + (f" (step {step})" if step is not None else "")

        page.table(["layer", "best 8-neighbour share of board attention (formed at)",
                    "rule-token attention (formed at)", "next-state AUC after it (formed at)"],
                   [[f"L{r['layer']}", *(cell(r, name) for name in ("locality", "rule_attention", "next_auc"))]
                    for r in forms["by_layer"]])
    for fig in figures:
        page.image(fig)


def verdict_table(summary: dict, embed: bool) -> str:
    """Hypothesis, verdict, key numbers (first seed), and one column per control checkpoint."""
    labels = list(summary["controls"])
    header = ["", "hypothesis", "verdict", "key numbers (seed 0)"] + [f"control: {label}" for label in labels]
    rows = []
    for h, v in summary["verdicts"].items():
        controls = [summary["controls"][label]["verdicts"][h] for label in labels]
        rows.append([h, HYPOTHESES[h], v["verdict"], v["per_seed"][0]]
                    + [f"{c['verdict']}: {c['headline']}" for c in controls])
    if embed:
        def cell(i: int, text: str) -> str:
            cls = f' class="{text.replace(" ", "-")}"' if i == 2 else ""
            return f"<td{cls}>{html.escape(text)}</td>"
        return ("<table><tr>" + "".join(f"<th>{html.escape(x)}</th>" for x in header) + "</tr>"
                + "".join("<tr>" + "".join(cell(i, x) for i, x in enumerate(row)) + "</tr>" for row in rows)
                + "</table>")
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(f"**{x}**" if i == 2 else x for i, x in enumerate(row)) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def controls_note(summary: dict) -> str:
    if not summary["controls"]:
        return ("No control columns: no control checkpoint of this shape was found. `make controls` trains a "
                "random-init and a rule-blind control (runs control_random_init, control_rule_blind) and "
                "reports with them.")
    return "Controls (the same analyses, data seed {}): ".format(summary["seeds"][0]) + "; ".join(
        f"{label}: run {c['run_id']}, step {c['step']}, held-out accuracy {100 * c['heldout_acc']:.1f}%"
        for label, c in summary["controls"].items())


READINGS = {
    "H1": "Shares of a target query's board attention, averaged over queries and boards. The stencil share "
          "(3x3, the query's own cell included) is split into the own-cell share and the 8-neighbour share, "
          "because a head that only copies its own cell would score 1.0 on the stencil share. A head aggregates "
          "the neighbourhood when most of its board attention is on the 8 neighbours and spread over them "
          "(evenness = smallest neighbour weight / their mean; a plus-shaped head is partial). Uniform "
          "attention would put 8/(H*W) on the neighbours.",
    "H2": "Probes are trained on 75% of the boards and scored on the other 25%. Random-init models of the same "
          "shape (several init seeds; the margin is judged against the best of them) control for what the "
          "architecture gives for free; shuffled labels control for probe capacity.",
    "H3": "The discriminating test removes the rule-reading path: every rule token's embedding is replaced by "
          "the mean of its two values' embeddings, and accuracy on held-out rules is compared with the best "
          "rule-blind predictor (per (state, count) case, the more frequent next state). Rule use = the share of "
          "the model's advantage over rule-blind that the ablation removes. The flip test (flip one rule token: "
          "exactly the governed cells should change) is a consistency check: for a model right under both "
          "rules it holds by construction. Patching one head from the flipped run names the heads that carry "
          "the rule; below the effect floor it reports no effect.",
    "H4": "Put together, layer by layer: how local each layer's attention is (a head's largest share on the 8 "
          "neighbours, from H1), how well the next state and the neighbour count are read after it (H2's probes, "
          "the logit lens), what removing its attention or its MLP costs, and what removing it with every later layer "
          "costs (how far the model must run); the early half of the layers against the late half.",
}


