"""Score-entropy discrete diffusion (SEDD, Lou et al. 2024): noise schedule, transition graphs, loss, sampler.

Tokens are ``0..3`` (A,C,G,T); the absorbing graph adds a mask token ``4``. The model returns log-scores
``log s_theta(x, t)_y`` ``(B, L, n_tokens)``, the log ratios ``p_t(x with y at l) / p_t(x)``.

Random draws come from a CPU ``torch.Generator`` and are moved to the data's device (:func:`_uniform`), so a
step draws the same numbers on CPU and GPU and the plain loop, Lightning and a resumed run share one stream.
"""

from __future__ import annotations

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


@dataclass(frozen=True)
class GeometricNoise:
    """Upstream's noise: ``sigma_bar(t) = sigma_min^(1-t) sigma_max^t``, rate ``sigma_bar(t) ln(max/min)``."""

    sigma_min: float = 1e-4
    sigma_max: float = 20.0

    def _sigmas(self, t: Tensor) -> tuple[Tensor, Tensor]:
        sigmas = torch.tensor([self.sigma_min, self.sigma_max], dtype=torch.float32, device=t.device)
        return sigmas[0], sigmas[1]

    def total(self, t: Tensor) -> Tensor:
        low, high = self._sigmas(t)
        return low ** (1 - t) * high**t

    def rate(self, t: Tensor) -> Tensor:
        low, high = self._sigmas(t)
        return low ** (1 - t) * high**t * (high.log() - low.log())


Noise = LogLinearNoise | GeometricNoise


def make_noise(name: str, sigma_min: float = 1e-4, sigma_max: float = 20.0, eps: float = 1e-3) -> Noise:
    """``geometric`` (upstream's) or ``loglinear``."""
    if name == "geometric":
        return GeometricNoise(float(sigma_min), float(sigma_max))
    if name == "loglinear":
        return LogLinearNoise(float(eps))
    raise ConfigError(f"unknown noise {name!r}; expected 'geometric' or 'loglinear'")


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
        # The score at the current token cancels out of every term below (upstream's formula adds and
        # subtracts it), so it gets no gradient and a network without scatter-to-zero (Conv) lets it drift;
        # once it passes ~88, exp() overflows and inf - inf is NaN. Setting it to 0 leaves the loss unchanged.
        log_score = log_score.scatter(-1, xt[..., None], 0.0)
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
        """Upstream's Euler step: ``one_hot(x) + dt * rate * reverse rate`` (unnormalised, unclamped)."""
        jump = score * rate_dt[:, None, None] / self.n_tokens
        jump = jump.scatter(-1, xt[..., None], 0.0)
        return jump.scatter(-1, xt[..., None], 1 - jump.sum(-1, keepdim=True))

    def transition(self, x: Tensor, sigma: Tensor) -> Tensor:
        """Row ``x`` of ``exp(sigma Q)``: ``(1 - e^-sigma) / n`` off ``x``, the rest on ``x``."""
        move = (-torch.expm1(-sigma))[:, None, None] / self.n_tokens
        off = move.expand(*x.shape, self.n_tokens).scatter(-1, x[..., None], 0.0)
        return off.scatter(-1, x[..., None], 1 - off.sum(-1, keepdim=True))

    def staggered_score(self, score: Tensor, dsigma: Tensor) -> Tensor:
        """``p_{sigma - dsigma}(z) / p_sigma(x)`` from the score: ``e^{-dsigma Q}`` applied to it."""
        epow = (-dsigma).exp()[:, None, None]
        return (epow - 1) / (self.n_tokens * epow) * score.sum(-1, keepdim=True) + score / epow

    def analytic_probs(self, xt: Tensor, score: Tensor, sigma_t: Tensor, sigma_s: Tensor) -> Tensor:
        """Upstream's analytic (Tweedie) step from ``sigma_t`` to ``sigma_s``: unnormalised probabilities."""
        dsigma = sigma_t - sigma_s
        return self.staggered_score(score, dsigma) * self.transition(xt, dsigma)


GRAPHS: dict[str, type[Graph]] = {"absorbing": AbsorbingGraph, "uniform": UniformGraph}


def make_graph(name: str) -> Graph:
    if name not in GRAPHS:
        raise ConfigError(f"unknown graph {name!r}; expected one of {sorted(GRAPHS)}")
    return GRAPHS[name]()


LOSS_T_EPS = 1e-3  # upstream's loss draws t ~ U(1e-3, 1)


def loss_per_sequence(
    model: torch.nn.Module,
    graph: Graph,
    noise: Noise,
    x0: Tensor,
    labels: Tensor,
    generator: torch.Generator | None,
    t: Tensor | None = None,
    perturbed: Tensor | None = None,
) -> Tensor:
    """Upstream's score-entropy loss ``(B,)``: ``rate(t) * sum over positions``; ``t`` and the noised
    ``perturbed`` are drawn from ``generator`` unless given."""
    if t is None:
        t = (1 - LOSS_T_EPS) * _uniform((x0.shape[0],), generator, x0.device) + LOSS_T_EPS
    sigma, rate = noise.total(t), noise.rate(t)
    xt = graph.sample_transition(x0, sigma, generator) if perturbed is None else perturbed
    log_score = model(xt, labels, sigma)
    return (rate[:, None] * graph.score_entropy(log_score, sigma, xt, x0)).sum(-1)


MAX_LOG_SCORE = 50.0  # exp(50 + sigma_max + log 4) stays far below float32's largest number


def analytic_score(graph: Graph, log_score: Tensor) -> Tensor:
    """The scores the analytic step and the denoiser take: ``exp(log_score)``, except that on the uniform
    graph a position whose largest log-score exceeds ``MAX_LOG_SCORE`` is divided by
    ``exp(max - MAX_LOG_SCORE)``.

    The uniform graph's analytic step is linear in a position's scores and a Gumbel draw ignores a
    per-position factor, so the draws are upstream's (and the probabilities too wherever upstream's are
    finite); only the overflow is avoided: upstream's Conv leaves the score at the current token untrained,
    free to drift past ``exp``'s float32 range, and then every token's probability is ``inf`` and the draw is
    always ``A``. (The absorbing graph's step is not scale-free; its scores stay ``exp``.)
    """
    if graph.absorbing:
        return log_score.exp()
    excess = (log_score.amax(-1, keepdim=True) - MAX_LOG_SCORE).clamp(min=0.0)
    return (log_score - excess).exp()


def gumbel_draw(probs: Tensor, generator: torch.Generator) -> Tensor:
    """Upstream's categorical draw of unnormalised ``probs`` (B, L, K) -> (B, L):
    ``argmax(p / (1e-10 - log(U + 1e-10)))``, ``U`` from the CPU ``generator``."""
    noise = 1e-10 - (_uniform(tuple(probs.shape), generator, probs.device) + 1e-10).log()
    return (probs / noise).argmax(-1)


def denoise_probs(
    model: torch.nn.Module, graph: Graph, noise: Noise, x: Tensor, labels: Tensor, eps: float
) -> Tensor:
    """Upstream's final ``Denoiser`` step at ``t = eps``: the analytic step to ``sigma = 0``."""
    sigma = noise.total(torch.full((x.shape[0],), eps, device=x.device))
    score = analytic_score(graph, model(x, labels, sigma))
    probs = graph.analytic_probs(x, score, sigma, torch.zeros_like(sigma))
    return probs[..., :N_NUCLEOTIDES]


def step_probs(
    model: torch.nn.Module,
    graph: Graph,
    noise: Noise,
    x: Tensor,
    labels: Tensor,
    t: float,
    dt: float,
    predictor: str,
) -> Tensor:
    """One reverse step's unnormalised probabilities at ``t`` with step ``dt`` (upstream's predictors)."""
    t_vec = torch.full((x.shape[0],), t, device=x.device)
    sigma_t = noise.total(t_vec)
    log_score = model(x, labels, sigma_t)
    if predictor == "analytic":
        return graph.analytic_probs(x, analytic_score(graph, log_score), sigma_t, noise.total(t_vec - dt))
    return graph.reverse_probs(x, log_score.exp(), noise.rate(t_vec) * dt)


@torch.no_grad()
def sample(
    model: torch.nn.Module,
    graph: Graph,
    noise: Noise,
    labels: Tensor,
    length: int,
    steps: int,
    predictor: str,
    generator: torch.Generator,
    eps: float = 1e-5,
) -> Tensor:
    """Sequences ``(B, length)`` conditioned on ``labels``: upstream's ``pc_sampler``.

    ``steps`` reverse steps from ``t = 1`` to ``eps`` with the ``analytic`` or ``euler`` predictor, then
    the denoiser; every draw is :func:`gumbel_draw`.
    """
    if predictor not in ("analytic", "euler"):
        raise ConfigError(f"unknown predictor {predictor!r}; expected 'analytic' or 'euler'")
    x = graph.limit((labels.shape[0], length), generator, labels.device)
    times = torch.linspace(1.0, eps, steps + 1).tolist()
    dt = (1 - eps) / steps
    for t in times[:-1]:
        x = gumbel_draw(step_probs(model, graph, noise, x, labels, t, dt, predictor), generator)
    return gumbel_draw(denoise_probs(model, graph, noise, x, labels, times[-1]), generator)


def step_generator(seed: int, step: int) -> torch.Generator:
    """The random stream of one training step: the same in the plain loop and in Lightning, and on resume."""
    return torch.Generator().manual_seed(int(seed) * 1_000_003 + int(step))


def lr_at(step: int, lr: float, warmup: int) -> float:
    """Linear warm-up over ``warmup`` steps (step 0 already gets ``lr / warmup``), then constant."""
    return lr * min((step + 1) / max(warmup, 1), 1.0)


def ema_decay_at(updates: int, decay: float) -> float:
    """The EMA decay after ``updates`` updates: ``min(decay, (1 + n) / (10 + n))`` (warm start)."""
    return min(decay, (1 + updates) / (10 + updates))
