"""Score-entropy discrete diffusion (SEDD, Lou et al. 2024): noise schedule, transition graphs, loss, sampler.

Tokens are ``0..3`` (A,C,G,T); the absorbing graph adds a mask token ``4``. The model returns log-scores
``log s_theta(x, t)_y`` ``(B, L, n_tokens)``, the log ratios ``p_t(x with y at l) / p_t(x)``.

Random draws come from a CPU ``torch.Generator`` and are moved to the data's device (:func:`_uniform`), so a
step draws the same numbers on CPU and GPU and the plain loop, Lightning and a resumed run share one stream.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import torch
from torch import Tensor

from tf2lightning.errors import ConfigError

N_NUCLEOTIDES = 4


@dataclass(frozen=True)
class LogLinearNoise:
    """``sigma_bar(t) = -log(1 - (1 - eps) t)``: the chance that a token is noised grows linearly in ``t``."""

    eps: float = 1e-3

    def total(self, t: Tensor) -> Tensor:
        return -torch.log1p(-(1 - self.eps) * t)

    def rate(self, t: Tensor) -> Tensor:
        return (1 - self.eps) / (1 - (1 - self.eps) * t)


def _uniform(shape: tuple[int, ...], generator: torch.Generator, device: torch.device) -> Tensor:
    """``U[0, 1)`` draws from the CPU ``generator``, on ``device``."""
    return torch.rand(shape, generator=generator).to(device)


def _integers(high: int, shape: tuple[int, ...], generator: torch.Generator, device: torch.device) -> Tensor:
    """Integers in ``[0, high)`` from the CPU ``generator``, on ``device``."""
    return torch.randint(0, high, shape, generator=generator).to(device)


def _expm1(sigma: Tensor) -> Tensor:
    """``e^sigma - 1``, accurate for small and large ``sigma``."""
    return torch.where(sigma < 0.5, torch.expm1(sigma), sigma.exp() - 1)


class Graph:
    """A transition graph: forward noising, the score-entropy loss and the reverse step."""

    n_tokens: int
    absorbing: bool

    def sample_transition(self, x0: Tensor, sigma: Tensor, generator: torch.Generator) -> Tensor:
        raise NotImplementedError

    def score_entropy(self, log_score: Tensor, sigma: Tensor, xt: Tensor, x0: Tensor) -> Tensor:
        raise NotImplementedError

    def limit(self, shape: tuple[int, ...], generator: torch.Generator, device: torch.device) -> Tensor:
        raise NotImplementedError

    def reverse_probs(self, xt: Tensor, score: Tensor, rate_dt: Tensor) -> Tensor:
        """Euler step probabilities over the ``n_tokens`` next tokens, ``rate_dt = sigma(t) dt`` ``(B,)``."""
        raise NotImplementedError


class AbsorbingGraph(Graph):
    """Each token jumps to the mask token at rate ``sigma(t)``; the mask never leaves."""

    n_tokens = N_NUCLEOTIDES + 1
    absorbing = True
    mask = N_NUCLEOTIDES

    def sample_transition(self, x0: Tensor, sigma: Tensor, generator: torch.Generator) -> Tensor:
        move = _uniform(x0.shape, generator, x0.device) < -torch.expm1(-sigma)[:, None]
        return torch.where(move, torch.full_like(x0, self.mask), x0)

    def score_entropy(self, log_score: Tensor, sigma: Tensor, xt: Tensor, x0: Tensor) -> Tensor:
        """Per-position loss ``(B, L)``; only masked positions contribute."""
        masked = xt == self.mask
        ratio = 1 / _expm1(sigma)[:, None].expand_as(xt)  # p(x0) / p(mask) at each position
        negative = ratio * log_score.gather(-1, x0[..., None]).squeeze(-1)
        positive = log_score[..., : self.mask].exp().sum(-1)
        constant = ratio * (ratio.log() - 1)
        return torch.where(masked, positive - negative + constant, torch.zeros_like(positive))

    def limit(self, shape: tuple[int, ...], generator: torch.Generator, device: torch.device) -> Tensor:
        return torch.full(shape, self.mask, dtype=torch.long, device=device)

    def reverse_probs(self, xt: Tensor, score: Tensor, rate_dt: Tensor) -> Tensor:
        jump = score[..., : self.mask] * rate_dt[:, None, None]  # unmask to each nucleotide
        stay = (1 - jump.sum(-1, keepdim=True)).clamp(min=0)
        probs = torch.cat([jump, stay], -1)
        return torch.where((xt == self.mask)[..., None], probs, torch.nn.functional.one_hot(xt, 5).float())

    def analytic_probs(self, xt: Tensor, score: Tensor, sigma_t: Tensor, sigma_s: Tensor) -> Tensor:
        """Exact reverse probabilities from ``t`` to ``s < t`` given the score (Tweedie tau-leaping)."""
        denoised = score[..., : self.mask] * _expm1(sigma_t)[:, None, None]  # p(x0 = y | masked)
        keep = (-torch.expm1(-sigma_s) / -torch.expm1(-sigma_t))[:, None, None]  # stay masked
        probs = torch.cat([denoised * (1 - keep), keep.expand(*denoised.shape[:2], 1)], -1)
        return torch.where((xt == self.mask)[..., None], probs, torch.nn.functional.one_hot(xt, 5).float())


class UniformGraph(Graph):
    """Each token jumps to a uniformly drawn token at rate ``sigma(t)`` (``Q = 11^T / n - I``)."""

    n_tokens = N_NUCLEOTIDES
    absorbing = False

    def sample_transition(self, x0: Tensor, sigma: Tensor, generator: torch.Generator) -> Tensor:
        move = _uniform(x0.shape, generator, x0.device) < -torch.expm1(-sigma)[:, None]
        uniform = _integers(self.n_tokens, x0.shape, generator, x0.device)
        return torch.where(move, uniform, x0)

    def score_entropy(self, log_score: Tensor, sigma: Tensor, xt: Tensor, x0: Tensor) -> Tensor:
        n = self.n_tokens
        esigm1 = _expm1(sigma)[:, None].expand_as(xt)
        ratio = 1 - n / (esigm1 + n)  # true score p_t(y) / p_t(xt) for y != xt when xt == x0
        at_xt = log_score.gather(-1, xt[..., None]).squeeze(-1)
        at_x0 = log_score.gather(-1, x0[..., None]).squeeze(-1)
        negative = log_score.mean(-1) - at_xt / n
        same = xt == x0
        negative = torch.where(same, ratio * negative, at_x0 / esigm1 + negative)
        constant = torch.where(
            same,
            (n - 1) / n * ratio * (ratio.log() - 1),
            ((-ratio.log() - 1) / ratio - (n - 2)) / n,
        )
        scores = log_score.exp()
        positive = scores.mean(-1) - scores.gather(-1, xt[..., None]).squeeze(-1) / n
        return positive - negative + constant

    def limit(self, shape: tuple[int, ...], generator: torch.Generator, device: torch.device) -> Tensor:
        return _integers(self.n_tokens, shape, generator, device)

    def reverse_probs(self, xt: Tensor, score: Tensor, rate_dt: Tensor) -> Tensor:
        jump = score * rate_dt[:, None, None] / self.n_tokens
        jump = jump.scatter(-1, xt[..., None], 0.0)
        stay = (1 - jump.sum(-1, keepdim=True)).clamp(min=0)
        return jump.scatter(-1, xt[..., None], stay)


GRAPHS: dict[str, type[Graph]] = {"absorbing": AbsorbingGraph, "uniform": UniformGraph}


def make_graph(name: str) -> Graph:
    if name not in GRAPHS:
        raise ConfigError(f"unknown graph {name!r}; expected one of {sorted(GRAPHS)}")
    return GRAPHS[name]()


def loss_per_sequence(
    model: torch.nn.Module,
    graph: Graph,
    noise: LogLinearNoise,
    x0: Tensor,
    labels: Tensor,
    generator: torch.Generator,
) -> Tensor:
    """The score-entropy loss ``(B,)``: ``sigma(t) * sum over positions``, ``t ~ U(eps-free range)``."""
    t = (1 - noise.eps) * _uniform((x0.shape[0],), generator, x0.device) + noise.eps
    sigma, rate = noise.total(t), noise.rate(t)
    xt = graph.sample_transition(x0, sigma, generator)
    log_score = model(xt, sigma, labels)
    return (rate[:, None] * graph.score_entropy(log_score, sigma, xt, x0)).sum(-1)


def _categorical(probs: Tensor, generator: torch.Generator) -> Tensor:
    """One draw per row of unnormalised non-negative ``probs`` (B, L, K) -> (B, L), on ``probs``' device
    (drawn on the CPU, where ``generator`` lives)."""
    flat = probs.clamp(min=0).reshape(-1, probs.shape[-1]).float().cpu() + 1e-30
    return torch.multinomial(flat, 1, generator=generator).reshape(probs.shape[:-1]).to(probs.device)


@torch.no_grad()
def sample(
    model: torch.nn.Module,
    graph: Graph,
    noise: LogLinearNoise,
    labels: Tensor,
    length: int,
    steps: int,
    predictor: str,
    generator: torch.Generator,
) -> Tensor:
    """Sequences ``(B, length)`` of nucleotide codes conditioned on ``labels`` ``(B, n_act)``.

    ``steps`` reverse steps from ``t = 1`` to ``t = eps`` with the ``euler`` or (absorbing only) the
    ``analytic`` predictor; masks left at the end are filled from the model's denoised distribution.
    """
    if predictor == "analytic" and not graph.absorbing:
        raise ConfigError("the analytic predictor needs the absorbing graph; use predictor 'euler'")
    if predictor not in ("analytic", "euler"):
        raise ConfigError(f"unknown predictor {predictor!r}; expected 'analytic' or 'euler'")
    batch = labels.shape[0]
    x = graph.limit((batch, length), generator, labels.device)
    times = torch.linspace(1.0, noise.eps, steps + 1, device=labels.device)
    for t, s in itertools.pairwise(times):
        t_vec = t.expand(batch)
        sigma_t = noise.total(t_vec)
        score = model(x, sigma_t, labels).exp()
        if predictor == "analytic":
            probs = graph.analytic_probs(x, score, sigma_t, noise.total(s.expand(batch)))
        else:
            probs = graph.reverse_probs(x, score, noise.rate(t_vec) * (t - s))
        x = _categorical(probs, generator)
    if graph.absorbing:
        sigma = noise.total(torch.full((batch,), noise.eps, device=labels.device))
        final = _categorical(model(x, sigma, labels).exp()[..., :N_NUCLEOTIDES], generator)
        x = torch.where(x == AbsorbingGraph.mask, final, x)
    return x


def step_generator(seed: int, step: int) -> torch.Generator:
    """The random stream of one training step: the same in the plain loop and in Lightning, and on resume."""
    return torch.Generator().manual_seed(int(seed) * 1_000_003 + int(step))


def lr_at(step: int, lr: float, warmup: int) -> float:
    """Linear warm-up over ``warmup`` steps (step 0 already gets ``lr / warmup``), then constant."""
    return lr * min((step + 1) / max(warmup, 1), 1.0)


def ema_decay_at(updates: int, decay: float) -> float:
    """The EMA decay after ``updates`` updates: ``min(decay, (1 + n) / (10 + n))`` (warm start)."""
    return min(decay, (1 + updates) / (10 + updates))
