"""The read-out at neuron level: which neurons of the last MLP carry the governing rule bit to a target.

A target's next state is ``rule_bit[case]``: the bit of the rule that governs its (state, count) case.
The last MLP at the targets reads the answer out (the lookup map, :mod:`interfere.explore.account.routes`, says
where it was looked up; the interchange account leaves only this MLP computed). For
each target cell this runs the model twice more: with the cell's *governing* bit flipped (its true next
state flips) and with one *non-governing* bit flipped (its next state stays). Patching a set S of the
MLP's neurons (their activations ``mlp.hook_post`` at that target, taken from the flipped run) into the
clean run *carries* the flip when the prediction follows the flipped rule's next state; the same neurons
*leak* when a non-governing flip patched through them changes the prediction. Since the MLP is the last
component at a target, a patch at one target changes only that target's output, so every cell can be
patched at once, and a set's carry is read off the final LayerNorm and unembedding directly (confirmed
once through the hooked model).

Neurons are ranked by how far their change under the governing flip moves the target's logit difference
towards the flipped answer (their direct effect); the smallest top-k set that carries at
least ``carry`` of governing flips and leaks at most ``leak`` of non-governing ones is the lookup set, and
random sets of its size are its control. Each neuron is named by what it responds to: the (state, count
band) where its clean activation is highest and the rule bit its activation follows there.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from interfere.ca.rules import BIT_NAMES, N_COUNTS, N_RULE_BITS
from interfere.explore import batched
from interfere.explore.account.routes import flip_bit
from interfere.explore.analysis import Examples
from interfere.model.hooks import act_name
from interfere.model.life_model import LifeTransformer

RANDOM_SETS = 20


@dataclass
class Flips:
    """MLP activations at the targets: clean, under each cell's governing flip and a non-governing one."""

    resid_mid: torch.Tensor  # [N, cells, d_model]: the residual entering the last MLP (clean)
    clean: torch.Tensor  # [N, cells, d_mlp]
    governing: torch.Tensor  # [N, cells, d_mlp]
    other: torch.Tensor  # [N, cells, d_mlp]
    truth: torch.Tensor  # [N, cells] clean next state
    case: torch.Tensor  # [N, cells] governing bit index


def collect(model: LifeTransformer, ex: Examples, seed: int) -> Flips:
    """One clean and 18 flipped hooked forwards (one per bit), kept at the targets only."""
    layer, targets = model.cfg.n_layers - 1, model.layout.targets[0]
    post, mid = act_name("post", layer), act_name("resid_mid", layer)
    take = lambda _, act: act[:, targets]  # noqa: E731
    clean = batched.cached(model, ex.tokens, [post, mid], take=take)
    flipped = []
    for b in range(N_RULE_BITS):
        flipped.append(batched.cached(model, model.encode_prompt(flip_bit(ex.rules, b), ex.boards), [post],
                                      take=take)[post])
    every = torch.stack(flipped, dim=2)  # [N, cells, 18, d_mlp]
    gov = ex.cases
    g = torch.Generator().manual_seed(seed)
    other = (gov + torch.randint(1, N_RULE_BITS, gov.shape, generator=g)) % N_RULE_BITS
    pick = lambda bits: every.gather(2, bits[..., None, None].expand(-1, -1, 1, every.shape[-1]))[:, :, 0]  # noqa
    return Flips(clean[mid], clean[post], pick(gov), pick(other), ex.next_boards.flatten(1), gov)


@torch.no_grad()
def predictions(model: LifeTransformer, flips: Flips, hidden: torch.Tensor) -> torch.Tensor:
    """The last layer's prediction at every target with MLP activations ``hidden`` ``[N, cells, d_mlp]``."""
    mlp = model.blocks[-1].mlp
    dev = model.cfg.device
    out = hidden.to(dev) @ mlp.W_out + mlp.b_out
    logits = model.unembed(model.final_norm(flips.resid_mid.to(dev) + out))
    return logits.argmax(-1).cpu()


def carry_and_leak(model: LifeTransformer, flips: Flips, neurons: torch.Tensor) -> tuple[float, float]:
    """(share of governing flips the neurons carry, share of non-governing flips that leak through them)."""
    clean_pred = predictions(model, flips, flips.clean)
    patched = flips.clean.clone()
    patched[..., neurons] = flips.governing[..., neurons]
    carry = (predictions(model, flips, patched) == 1 - flips.truth).float().mean().item()
    patched = flips.clean.clone()
    patched[..., neurons] = flips.other[..., neurons]
    leak = (predictions(model, flips, patched) != clean_pred).float().mean().item()
    return carry, leak


@torch.no_grad()
def direct_effects(model: LifeTransformer, flips: Flips) -> torch.Tensor:
    """``[d_mlp]``: how far each neuron's change under the governing flip moves the cell's logit difference
    (alive minus dead, through ``W_out``, the final LayerNorm's scale and the unembedding) towards the
    flipped rule's answer, averaged over cells."""
    mlp, dev = model.blocks[-1].mlp, model.cfg.device
    per_neuron = (mlp.W_out @ model.logit_direction()).cpu()  # [d_mlp]
    final = flips.resid_mid.to(dev) + flips.clean.to(dev) @ mlp.W_out + mlp.b_out
    scale = model.final_norm_scale(final).cpu()  # the final LayerNorm's divisor
    towards = (1 - 2 * flips.truth).float()  # +1 where the flipped answer is alive
    moved = (flips.governing - flips.clean) * per_neuron * (towards / scale)[..., None]
    return moved.flatten(0, 1).mean(0)


def smallest_set(model: LifeTransformer, flips: Flips, carry: float, leak: float) -> tuple[torch.Tensor, int | None]:
    """(neurons ranked by their direct effect towards the flipped answer, the smallest top-k that carries
    >= ``carry`` with leak <= ``leak``, or None). Carry is assumed to grow with k along the ranking
    (bisection); the set it finds is checked directly."""
    ranked = direct_effects(model, flips).argsort(descending=True)
    passes = lambda k: carry_and_leak(model, flips, ranked[:k])[0] >= carry  # noqa: E731
    lo, hi = 0, len(ranked)  # carry grows with k along the ranking: bisect for the first k that carries
    if not passes(hi):
        return ranked, None
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if passes(mid) else (mid, hi)
    for k in range(hi, len(ranked) + 1):  # the first of those that also does not leak
        got, leaked = carry_and_leak(model, flips, ranked[:k])
        if got >= carry and leaked <= leak:
            return ranked, k
    return ranked, None


def neuron_names(flips: Flips, rules: torch.Tensor, neurons: list[int]) -> list[dict]:
    """What each neuron responds to: the (state, count band) where its clean activation is highest, and what its
    activation follows there: the rule bit with the largest difference of means between its values, or ``the answer``
    (the next state) where that follows it at least as well across a band of several counts (a read-out neuron
    follows every governing bit of its band, no single one)."""
    case = flips.case.flatten()  # governing bit index = state-and-count case
    act = flips.clean.flatten(0, 1)  # [N*cells, d_mlp]
    bits = rules[:, None, :].expand(-1, flips.case.shape[1], -1).flatten(0, 1)  # [N*cells, 18]
    out = []
    for j in neurons:
        means = torch.stack([act[case == k, j].mean() if (case == k).any() else torch.tensor(float("nan"))
                             for k in range(N_RULE_BITS)])
        top = int(torch.nan_to_num(means, nan=-1e9).argmax())
        block = range(0, N_COUNTS) if top < N_COUNTS else range(N_COUNTS, N_RULE_BITS)
        peak = float(means[top])
        band = [k for k in block if not torch.isnan(means[k]) and means[k] >= 0.5 * peak] if peak > 0 else [top]
        sel = torch.isin(case, torch.tensor(band))
        follow = [float(act[sel & bits[:, b], j].mean() - act[sel & ~bits[:, b], j].mean())
                  if (sel & bits[:, b]).any() and (sel & ~bits[:, b]).any() else 0.0 for b in range(N_RULE_BITS)]
        answer = flips.truth.flatten()
        by_answer = (float(act[sel & (answer == 1), j].mean() - act[sel & (answer == 0), j].mean())
                     if (sel & (answer == 1)).any() and (sel & (answer == 0)).any() else 0.0)
        reads = ("the answer" if len(band) > 1 and abs(by_answer) >= max(abs(f) for f in follow)
                 else BIT_NAMES[int(np.argmax(np.abs(follow)))])
        out.append({"neuron": j, "state": "alive" if top < N_COUNTS else "dead",
                    "counts": [k % N_COUNTS for k in band], "reads": reads})
    return out


@dataclass
class NeuronGroup:
    """Read-out neurons that respond to one (state, count band), with what they read (rule bit or the answer) and
    how many read it."""

    state: str
    counts: str
    neurons: list[int] = field(default_factory=list)
    reads: dict[str, int] = field(default_factory=dict)


@dataclass
class Readout:
    """The smallest ranked set of the last MLP's neurons that carries the governing bit (module docstring), its
    carry and leak, through the hooked model too, against random sets of its size and all neurons, by response."""

    component: str
    found: bool  # False: no set within the thresholds; every neuron is listed
    neurons: list[int]
    size: int
    d_mlp: int
    carry: float
    leak: float
    carry_hooked: float
    random_carry: float
    random_leak: float
    all_carry: float
    all_leak: float
    groups: list[NeuronGroup]
    boards: int


def group_names(named: list[dict]) -> list[NeuronGroup]:
    """Neurons grouped by (state, count band), with the rule bits they read."""
    groups: dict[tuple, NeuronGroup] = {}
    for n in named:
        counts = n["counts"]
        band = f"{counts[0]}" if len(counts) == 1 else f"{counts[0]}-{counts[-1]}"
        g = groups.setdefault((n["state"], band), NeuronGroup(n["state"], band))
        g.neurons.append(n["neuron"])
        g.reads[n["reads"]] = g.reads.get(n["reads"], 0) + 1
    return sorted(groups.values(), key=lambda g: -len(g.neurons))


def random_control(model: LifeTransformer, flips: Flips, k: int, seed: int) -> tuple[float, float]:
    """Mean (carry, leak) of RANDOM_SETS random neuron sets of size ``k``."""
    g = torch.Generator().manual_seed(seed)
    d = flips.clean.shape[-1]
    runs = [carry_and_leak(model, flips, torch.randperm(d, generator=g)[:k]) for _ in range(RANDOM_SETS)]
    return float(np.mean([c for c, _ in runs])), float(np.mean([lk for _, lk in runs]))


def patched_hook(flips: Flips, neurons: torch.Tensor, layout_targets: slice, layer: int) -> list:
    """A hooked-model check of the direct computation: hooks that patch ``neurons`` at every target
    from the governing-flip run (per chunk of examples)."""
    def for_part(part: slice) -> list:
        def patch(post: torch.Tensor, hook: object) -> torch.Tensor:  # [batch, pos, d_mlp]
            post = post.clone()
            src = flips.governing[part].to(post.device, post.dtype)
            post[:, layout_targets, neurons] = src[..., neurons]
            return post
        return [(act_name("post", layer), patch)]
    return for_part


def readout_set(model: LifeTransformer, ex: Examples, seed: int, th: dict) -> Readout:
    """The smallest ranked set of the last MLP's neurons that carries the governing bit (module docstring)."""
    flips = collect(model, ex, seed)
    ranked, k = smallest_set(model, flips, th["lookup_carry"], th["lookup_leak"])
    d_mlp = flips.clean.shape[-1]
    size = k or d_mlp
    neurons = ranked[:size]
    carry, leak = carry_and_leak(model, flips, neurons)
    all_carry, all_leak = carry_and_leak(model, flips, torch.arange(d_mlp))
    random_carry, random_leak = random_control(model, flips, size, seed)
    hooked = float((hooked_predictions(model, ex, flips, neurons) == 1 - flips.truth).float().mean())
    named = neuron_names(flips, ex.rules, neurons.tolist())
    return Readout(component=f"MLP{model.cfg.n_layers - 1}", found=k is not None, neurons=neurons.tolist(),
                   size=size, d_mlp=d_mlp, carry=carry, leak=leak, carry_hooked=hooked, random_carry=random_carry,
                   random_leak=random_leak, all_carry=all_carry, all_leak=all_leak, groups=group_names(named),
                   boards=len(ex))


def hooked_predictions(model: LifeTransformer, ex: Examples, flips: Flips, neurons: torch.Tensor) -> torch.Tensor:
    """The governing-flip patch through the hooked model itself (checks the direct computation)."""
    hooks = patched_hook(flips, neurons, model.layout.targets[0], model.cfg.n_layers - 1)
    logits = model.layout.first_step(batched.target_logits(model, ex.tokens, hooks))
    return logits.argmax(-1)
