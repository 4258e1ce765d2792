"""Diffusion objectives and samplers for the text-to-image model, beside the denoiser itself.

An objective turns clean images/latents x0 into one training example (x_t, timesteps, target); a sampler turns
pure noise into x0 one step at a time from the denoiser's outputs. Both follow diffusers' conventions so that
weights and settings carry over: EpsilonObjective + DDPMSampler/DDIMSampler (DDPMScheduler, DDIMScheduler with
"leading" timestep spacing and no clipping) and FlowObjective + EulerSampler (FlowMatchEulerDiscreteScheduler).
Timesteps are always what the model is given: floats of shape (B,), on the training scale [0, T).
"""

import math
from collections.abc import Callable

import torch

from shared.errors import ConfigError, InputError

Tensor = torch.Tensor


def guidance(uncond: Tensor, cond: Tensor, scale: float) -> Tensor:
    """Classifier-free guidance u + s·(c − u) for any prediction (noise, velocity, logits) of matching shapes."""
    return uncond + scale * (cond - uncond)


def _per_row(t: Tensor, like: Tensor) -> Tensor:
    """(B,) -> (B, 1, ..., 1), so a per-example scalar broadcasts over the rest of `like`."""
    return t.reshape(-1, *([1] * (like.dim() - 1)))


def _randn(shape: tuple[int, ...], generator: torch.Generator | None, like: Tensor) -> Tensor:
    # drawn where the generator lives (CPU as a rule) so a seed gives the same numbers on every device
    device = generator.device if generator is not None else like.device
    return torch.randn(shape, generator=generator, device=device).to(like.device, like.dtype)


def initial_noise(shape: tuple[int, ...], generators: list[torch.Generator], device=None, dtype=None) -> Tensor:
    """Standard normal noise of `shape` whose row i comes from generators[i] alone, drawn on the generator's
    device (CPU as a rule) and then moved: image i of a batch is the image its seed gives when generated alone."""
    if len(generators) != shape[0]:
        raise InputError(f"initial noise needs one generator per row: got {len(generators)} for {shape[0]} rows")
    rows = [torch.randn(tuple(shape[1:]), generator=g, device=g.device) for g in generators]
    return torch.stack(rows).to(device=device, dtype=dtype)  # (B, ...)


def _noise_like(x: Tensor, generators: list[torch.Generator] | None) -> Tensor:
    if generators is None:
        return torch.randn(x.shape, device=x.device, dtype=x.dtype)
    return initial_noise(tuple(x.shape), generators, device=x.device, dtype=x.dtype)


class NoiseSchedule:
    """DDPM's variance schedule: betas (T,) and alphas_cumprod ᾱ (T,), float32, as diffusers builds them.

    beta_schedule: "linear" (betas evenly spaced), "scaled_linear" (their square roots evenly spaced, Stable
    Diffusion's) or "squaredcos_cap_v2" (the cosine schedule of improved DDPM, each beta capped at 0.999)."""

    def __init__(self, num_train_timesteps: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02,
                 beta_schedule: str = "linear"):
        T = num_train_timesteps
        if beta_schedule == "linear":
            betas = torch.linspace(beta_start, beta_end, T, dtype=torch.float32)
        elif beta_schedule == "scaled_linear":
            betas = torch.linspace(beta_start ** 0.5, beta_end ** 0.5, T, dtype=torch.float32) ** 2
        elif beta_schedule == "squaredcos_cap_v2":
            def alpha_bar(s: float) -> float:
                return math.cos((s + 0.008) / 1.008 * math.pi / 2) ** 2
            betas = torch.tensor([min(1 - alpha_bar((i + 1) / T) / alpha_bar(i / T), 0.999) for i in range(T)],
                                 dtype=torch.float32)
        else:
            raise ConfigError(f"unknown beta schedule {beta_schedule!r}; use linear, scaled_linear or "
                              "squaredcos_cap_v2")
        self.num_train_timesteps = T
        self.betas = betas
        self.alphas_cumprod = torch.cumprod(1.0 - betas, dim=0)


class EpsilonObjective:
    """DDPM training: x_t = sqrt(ᾱ_t)·x0 + sqrt(1 − ᾱ_t)·ε with t uniform in [0, T); the model predicts ε."""

    name = "ddpm"
    prediction = "epsilon"
    samplers = ("ddpm", "ddim")

    def __init__(self, schedule: NoiseSchedule | None = None):
        self.schedule = schedule if schedule is not None else NoiseSchedule()
        self.num_train_timesteps = self.schedule.num_train_timesteps

    def training_inputs(self, x0: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """x0 (B, ...) -> (x_t (B, ...), timesteps (B,) float, target ε (B, ...)). The noise is drawn first, then t."""
        noise = _randn(tuple(x0.shape), generator, x0)
        g_device = generator.device if generator is not None else x0.device
        t = torch.randint(0, self.num_train_timesteps, (x0.shape[0],), generator=generator, device=g_device)
        t = t.to(x0.device)
        abar = _per_row(self.schedule.alphas_cumprod.to(x0.device, x0.dtype)[t], x0)
        return abar.sqrt() * x0 + (1 - abar).sqrt() * noise, t.float(), noise


class FlowObjective:
    """Rectified flow as in SD3: x_t = (1 − σ)·x0 + σ·noise with σ uniform in [0, 1); the model predicts the
    velocity noise − x0 and is given σ·T as its timestep."""

    name = "rectified_flow"
    prediction = "velocity"
    samplers = ("euler",)

    def __init__(self, num_train_timesteps: int = 1000):
        self.num_train_timesteps = num_train_timesteps

    def training_inputs(self, x0: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """x0 (B, ...) -> (x_t (B, ...), timesteps σ·T (B,) float, target noise − x0 (B, ...)); noise first, then σ."""
        noise = _randn(tuple(x0.shape), generator, x0)
        g_device = generator.device if generator is not None else x0.device
        sigma = torch.rand(x0.shape[0], generator=generator, device=g_device).to(x0.device)  # (B,)
        s = _per_row(sigma.to(x0.dtype), x0)
        return (1 - s) * x0 + s * noise, sigma * self.num_train_timesteps, noise - x0


def _check_steps(n: int, most: int | None = None) -> None:
    if n < 1 or (most is not None and n > most):
        limit = f" and at most {most}, the number of training timesteps" if most is not None else ""
        raise ConfigError(f"num_inference_steps must be at least 1{limit}; got {n}")


class _Discrete:
    """Shared by the DDPM and DDIM samplers: "leading" integer timesteps (T//N)·k, k = N−1 … 0."""

    def __init__(self, schedule: NoiseSchedule):
        self.schedule = schedule
        self.timesteps: Tensor | None = None

    def set_timesteps(self, num_inference_steps: int) -> Tensor:
        """The (N,) float timesteps the model is given, from the noisiest down to 0."""
        T = self.schedule.num_train_timesteps
        _check_steps(num_inference_steps, T)
        ratio = T // num_inference_steps
        self.timesteps = (torch.arange(num_inference_steps - 1, -1, -1) * ratio).float()
        return self.timesteps

    def _alphas(self, index: int) -> tuple[int, Tensor, Tensor]:
        """(t, ᾱ_t, ᾱ of the next step), with ᾱ = 1 past the last step: it ends on the clean image."""
        if self.timesteps is None:
            raise ConfigError("call set_timesteps before step")
        t = int(self.timesteps[index])
        abar = self.schedule.alphas_cumprod
        prev = int(self.timesteps[index + 1]) if index + 1 < len(self.timesteps) else -1
        return t, abar[t], abar[prev] if prev >= 0 else torch.tensor(1.0)


class DDPMSampler(_Discrete):
    """Ancestral DDPM sampling from an ε-prediction model, variance "fixed_small" (the posterior's), no clipping."""

    def step(self, output: Tensor, index: int, x: Tensor, generators: list[torch.Generator] | None = None) -> Tensor:
        """x_t (B, ...) and the model's ε at step `index` -> x of the next step. The variance noise of row i comes
        from generators[i] (the global RNG when None); the last step (t = 0) adds none."""
        t, a_t, a_prev = self._alphas(index)
        beta = 1 - a_t / a_prev  # this step's beta: the schedule's own only when every timestep is visited
        xf = x.float()
        x0 = (xf - (1 - a_t).sqrt() * output.float()) / a_t.sqrt()
        mean = (a_prev.sqrt() * beta / (1 - a_t)) * x0 + ((a_t / a_prev).sqrt() * (1 - a_prev) / (1 - a_t)) * xf
        if t > 0:
            variance = ((1 - a_prev) / (1 - a_t) * beta).clamp(min=1e-20)
            mean = mean + variance.sqrt() * _noise_like(xf, generators)
        return mean.to(x.dtype)


class DDIMSampler(_Discrete):
    """DDIM sampling from an ε-prediction model: deterministic at eta = 0, DDPM-like noise as eta grows to 1."""

    def __init__(self, schedule: NoiseSchedule, eta: float = 0.0):
        super().__init__(schedule)
        self.eta = eta

    def step(self, output: Tensor, index: int, x: Tensor, generators: list[torch.Generator] | None = None) -> Tensor:
        """x_t (B, ...) and the model's ε at step `index` -> x of the next step (noise per row as DDPMSampler)."""
        _, a_t, a_prev = self._alphas(index)
        xf, eps = x.float(), output.float()
        x0 = (xf - (1 - a_t).sqrt() * eps) / a_t.sqrt()
        std = self.eta * ((1 - a_prev) / (1 - a_t) * (1 - a_t / a_prev)).sqrt()
        out = a_prev.sqrt() * x0 + (1 - a_prev - std ** 2).sqrt() * eps
        if self.eta > 0:
            out = out + std * _noise_like(xf, generators)
        return out.to(x.dtype)


class EulerSampler:
    """Euler steps along a flow model's velocity, σ from 1 down to 0; shift > 1 spends more steps at high noise."""

    def __init__(self, num_train_timesteps: int = 1000, shift: float = 1.0):
        self.num_train_timesteps = num_train_timesteps
        self.shift = shift
        self.timesteps: Tensor | None = None
        self.sigmas: Tensor | None = None

    def _shifted(self, sigma: Tensor) -> Tensor:
        return self.shift * sigma / (1 + (self.shift - 1) * sigma)

    def set_timesteps(self, num_inference_steps: int) -> Tensor:
        """The (N,) float timesteps σ·T the model is given; σ ends on 0 after the last step."""
        _check_steps(num_inference_steps)
        T = self.num_train_timesteps
        # spaced down to the smallest training σ (1/T, shifted), then shifted again, as diffusers does
        sigma_min = self._shifted(torch.tensor(1.0) / T).item()
        sigmas = self._shifted(torch.linspace(T, sigma_min * T, num_inference_steps, dtype=torch.float64) / T)
        sigmas = sigmas.float()
        self.sigmas = torch.cat([sigmas, torch.zeros(1)])  # (N + 1,)
        self.timesteps = sigmas * T
        return self.timesteps

    def step(self, output: Tensor, index: int, x: Tensor, generators: list[torch.Generator] | None = None) -> Tensor:
        """x at σ_index (B, ...) and the model's velocity -> x at σ_index+1. Deterministic: generators unused."""
        if self.sigmas is None:
            raise ConfigError("call set_timesteps before step")
        dt = self.sigmas[index + 1] - self.sigmas[index]
        return (x.float() + dt * output.float()).to(x.dtype)


SAMPLERS = {"ddpm": DDPMSampler, "ddim": DDIMSampler, "euler": EulerSampler}
OBJECTIVES = {"ddpm": EpsilonObjective, "rectified_flow": FlowObjective}


def make_sampler(name: str, objective):
    """The sampler `name` set up for a model trained with `objective` (its schedule or number of timesteps)."""
    if name not in SAMPLERS:
        raise ConfigError(f"unknown sampler {name!r}; choose one of {', '.join(SAMPLERS)}")
    if name not in objective.samplers:
        raise ConfigError(f"the {name} sampler cannot sample a {objective.name} ({objective.prediction}) model; "
                          f"use {' or '.join(sorted(objective.samplers))}")
    if name == "euler":
        return EulerSampler(objective.num_train_timesteps)
    return SAMPLERS[name](objective.schedule)


@torch.no_grad()
def sample(denoise: Callable[[Tensor, Tensor], Tensor], noise: Tensor, sampler, num_inference_steps: int,
           generators: list[torch.Generator] | None = None, progress: Callable[[int, int], None] | None = None
           ) -> Tensor:
    """Run `sampler` from `noise` (B, ...) for num_inference_steps and return the final x (B, ...).

    denoise(x (B, ...), timesteps (B,) float32) gives the model output (ε or velocity, guidance already applied).
    generators (one per row) feed stochastic samplers; progress(i, n) is called after each step with i steps
    of n done."""
    timesteps = sampler.set_timesteps(num_inference_steps).to(noise.device)
    x = noise
    for i, t in enumerate(timesteps):
        x = sampler.step(denoise(x, t.expand(x.shape[0])), i, x, generators)
        if progress is not None:
            progress(i + 1, len(timesteps))
    return x
