"""The causal abstraction's interventions cross-checked with pyvene 0.1.8 (Wu et al.), on the same pairs: the full
vector (``VanillaIntervention``) and a subspace found by our search (``LowRankRotatedSpaceIntervention`` with its
weight set to ours), at one residual site; prints both IIAs and how many pair cells the two implementations agree on.

    python bench/pyvene_crosscheck.py --ckpt CKPT [--site resid_pre.1@board] [--variable bit] [--rank 4]

pyvene is not a dependency of the project (it pins transformers 4.x-era packages, its raw forward hooks never fire
on the hooks our fused attention skips: hook_pattern, hook_attn_scores, LayerNorm's, and it clears every forward hook
of the model on each call, ours included, unless told not to: ``keep_model_hooks``): run this in a separate
environment, e.g. ``python -m venv /tmp/pv && /tmp/pv/bin/pip install torch==2.13.0 && /tmp/pv/bin/pip install -e .
pyvene==0.1.8``. It goes through pyvene's own forward: the base from its tokens, the hook a raw module forward hook
on the site's ``HookPoint`` (pyvene's string access), so only residual, attention-output and MLP-output sites apply.
"""

from __future__ import annotations

import argparse
import time

import torch

from interfere.cpu import configure_cpu, cpu_description
from interfere.explore.abstraction import Params, data_of
from interfere.explore.alignment import das
from interfere.explore.alignment.search import best_fit, pairs_of
from interfere.explore.alignment.sites import Site
from interfere.model.checkpoint import load_checkpoint, model_from_checkpoint, weights_hash
from interfere.thresholds import load_thresholds


def keep_model_hooks(model) -> None:
    """pyvene clears every forward hook of the model before and after each call (``remove_forward_hooks``), which
    would strip the segment embeddings, rotary and mask that our model applies by permanent TransformerLens hooks:
    let it clear only the hooks it added."""
    import pyvene.models.intervenable_base as pv_base

    ours = {id(m): (set(m._forward_hooks), set(m._forward_pre_hooks)) for m in model.modules()}

    def remove_theirs(module: torch.nn.Module) -> None:
        for m in module.modules():
            post, pre = ours.get(id(m), (set(), set()))
            for hooks, keep in ((m._forward_hooks, post), (m._forward_pre_hooks, pre)):
                for key in [k for k in hooks if k not in keep]:
                    hooks.pop(key)

    pv_base.remove_forward_hooks = remove_theirs


def pyvene_hits(model, batch, site: Site, pairs: das.Pairs, basis: torch.Tensor | None) -> torch.Tensor:
    """``[P, m]``: pyvene's intervened prediction is the counterfactual label."""
    import pyvene as pv

    model.config = model.cfg  # pyvene reads model.config (stanfordnlp/pyvene issue #83) and model.device
    model.device = next(model.parameters()).device
    keep_model_hooks(model)
    dim = site.dim(model)
    if basis is None:
        intervention = pv.VanillaIntervention(embed_dim=dim)
    else:
        intervention = pv.LowRankRotatedSpaceIntervention(embed_dim=dim, low_rank_dimension=basis.shape[1])
        with torch.no_grad():
            intervention.rotate_layer.weight = basis.clone()  # the orthogonal parametrization takes an orthonormal Q
    component = f"blocks[{site.layer}].{site.hook.split('.', 2)[2]}.output"
    pvm = pv.IntervenableModel([{"component": component, "unit": "pos", "max_number_of_units": pairs.cells.shape[1],
                                 "intervention": intervention}], model=model)
    layout, out = model.layout, []
    with torch.no_grad():
        for start in range(0, len(pairs), 64):
            part = pairs.part(slice(start, start + 64))
            base_pos = site.positions(layout, part.cells, part.base_case).tolist()
            src_pos = site.positions(layout, part.source_cells, part.source_case).tolist()
            _, logits = pvm({"input": batch.tokens[part.base]}, [{"input": batch.tokens[part.source]}],
                            {"sources->base": ([src_pos], [base_pos])})
            read = layout.targets[0].start + part.cells
            out.append(logits[torch.arange(len(part))[:, None], read].argmax(-1) == part.label)
    return torch.cat(out)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ckpt", required=True)
    p.add_argument("--site", default="resid_pre.1@board")
    p.add_argument("--variable", default="bit")
    p.add_argument("--rank", type=int, default=4)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    configure_cpu(args.threads)
    ckpt = load_checkpoint(ckpt=args.ckpt)
    model = model_from_checkpoint(ckpt).eval()
    th = load_thresholds()
    data = data_of(model, Params(thresholds=th))
    site = Site.from_name(args.site)
    t0 = time.perf_counter()
    fitted = best_fit(data, data.train, data.test, args.variable, site, data.real, args.rank, None,
                      th["abstraction"])
    pairs = pairs_of(data, data.test, args.variable, site, data.real, "test")
    where = pairs.mask & pairs.changed
    print(f"weights {weights_hash(ckpt['path'])}, {args.variable} at {site.name}, {int(where.sum())} changed pair "
          f"cells, CPU {cpu_description()}")
    tries = [("full vector", None), (f"rank-{args.rank} subspace (ours, fitted)", fitted.basis)]
    if pairs.cells.shape[1] > 1:  # pyvene's rotated space takes a pair's units as one flattened vector
        print(f"rank-{args.rank} subspace: not compared at a site of {pairs.cells.shape[1]} cells per pair")
        tries = tries[:1]
    for label, basis in tries:
        ours, theirs = das.iia(data.test, site, pairs, basis), pyvene_hits(model, data.test, site, pairs, basis)
        print(f"{label}: IIA ours {float(ours[where].float().mean()):.4f}, pyvene "
              f"{float(theirs[where].float().mean()):.4f}; same verdict on {int((ours == theirs)[where].sum())} of "
              f"{int(where.sum())} pair cells")
    print(f"{time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
