"""Diffusion objectives and samplers: parity with diffusers' schedulers, the training formulas, seeding."""

import pytest
import torch

from shared.diffusion import (
    DDIMSampler,
    DDPMSampler,
    EpsilonObjective,
    EulerSampler,
    FlowObjective,
    NoiseSchedule,
    guidance,
    initial_noise,
    make_sampler,
    sample,
)

diffusers = pytest.importorskip("diffusers")

SHAPE = (3, 2, 4, 4)  # (B, C, H, W)
STEPS = (1, 7, 20, 50)
SCHEDULES = {"linear": (1e-4, 0.02), "scaled_linear": (0.00085, 0.012), "squaredcos_cap_v2": (1e-4, 0.02)}


def fake_model(x, t):
    """A fixed, t-dependent stand-in for a denoiser: 0.3·x + 0.1·sin(t/100)·pattern. t is (B,) or a scalar."""
    pattern = torch.linspace(-1, 1, x[0].numel()).reshape(x.shape[1:])
    t = torch.as_tensor(t, dtype=torch.float32).reshape(-1, *([1] * (x.dim() - 1)))  # (B or 1, 1, 1, 1)
    return 0.3 * x + 0.1 * torch.sin(t / 100) * pattern


def generators(seeds):
    return [torch.Generator().manual_seed(s) for s in seeds]


def ddpm_scheduler(**kw):
    return diffusers.DDPMScheduler(clip_sample=False, variance_type="fixed_small", **kw)


def ddim_scheduler(**kw):
    return diffusers.DDIMScheduler(clip_sample=False, set_alpha_to_one=True, steps_offset=0,
                                   timestep_spacing="leading", **kw)


def run_ours(sampler, n, noise, seeds=None):
    """Our sampler driven by fake_model: its timesteps and every step's x, to compare whole trajectories. Also
    checks that sample() ends where the step-by-step loop does."""
    gens = generators(seeds) if seeds else None
    timesteps, x, xs = sampler.set_timesteps(n), noise, []
    for i, t in enumerate(timesteps):
        x = sampler.step(fake_model(x, t.expand(x.shape[0])), i, x, gens)
        xs.append(x)
    final = sample(fake_model, noise, sampler, n, generators(seeds) if seeds else None)
    torch.testing.assert_close(final, xs[-1], atol=0, rtol=0)
    return timesteps, xs


# ---- noise schedule and objectives ----

@pytest.mark.parametrize("kind", sorted(SCHEDULES))
def test_noise_schedule_matches_diffusers(kind):
    start, end = SCHEDULES[kind]
    ours = NoiseSchedule(1000, start, end, kind)
    ref = diffusers.DDPMScheduler(beta_start=start, beta_end=end, beta_schedule=kind)
    assert ours.betas.dtype == ours.alphas_cumprod.dtype == torch.float32 and ours.betas.shape == (1000,)
    torch.testing.assert_close(ours.betas, ref.betas, atol=0, rtol=0)
    torch.testing.assert_close(ours.alphas_cumprod, ref.alphas_cumprod, atol=0, rtol=0)


def test_unknown_beta_schedule_is_refused():
    with pytest.raises(ValueError, match="beta schedule 'cosine'"):
        NoiseSchedule(beta_schedule="cosine")


def test_epsilon_objective_follows_the_formula_and_diffusers_add_noise():
    schedule = NoiseSchedule(1000, 0.00085, 0.012, "scaled_linear")
    objective = EpsilonObjective(schedule)
    x0 = torch.randn(64, 2, 3, 3, generator=torch.Generator().manual_seed(1))
    x_t, timesteps, target = objective.training_inputs(x0, torch.Generator().manual_seed(2))
    assert timesteps.shape == (64,) and timesteps.is_floating_point()
    assert torch.equal(timesteps, timesteps.round()) and 0 <= timesteps.min() and timesteps.max() < 1000
    assert len(timesteps.unique()) > 30  # spread over [0, T), not one value
    t = timesteps.long()
    abar = schedule.alphas_cumprod[t].reshape(-1, 1, 1, 1)
    torch.testing.assert_close(x_t, abar.sqrt() * x0 + (1 - abar).sqrt() * target, atol=1e-6, rtol=0)
    ref = diffusers.DDPMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear")
    torch.testing.assert_close(x_t, ref.add_noise(x0, target, t), atol=1e-6, rtol=0)
    assert abs(target.std().item() - 1) < 0.1  # the target is the standard normal noise itself
    again = objective.training_inputs(x0, torch.Generator().manual_seed(2))
    assert all(torch.equal(a, b) for a, b in zip((x_t, timesteps, target), again))


def test_flow_objective_follows_the_formula():
    objective = FlowObjective(1000)
    x0 = torch.randn(64, 2, 3, 3, generator=torch.Generator().manual_seed(1))
    x_t, timesteps, target = objective.training_inputs(x0, torch.Generator().manual_seed(2))
    sigma = (timesteps / 1000).reshape(-1, 1, 1, 1)
    assert timesteps.shape == (64,) and timesteps.is_floating_point()
    assert 0 <= timesteps.min() and timesteps.max() < 1000 and timesteps.std() > 200  # σ spread over (0, 1)
    noise = target + x0  # the target is noise − x0
    assert abs(noise.std().item() - 1) < 0.1
    torch.testing.assert_close(x_t, (1 - sigma) * x0 + sigma * noise, atol=1e-6, rtol=0)
    # x_t must not be built as (1 − σ)·noise + σ·x0, which the same target would also satisfy with noise − x0
    assert not torch.allclose(x_t, sigma * x0 + (1 - sigma) * noise, atol=1e-3)


# ---- samplers against diffusers ----

@pytest.mark.parametrize("n", STEPS)
def test_ddim_matches_diffusers(n):
    noise = torch.randn(SHAPE, generator=torch.Generator().manual_seed(0))
    timesteps, xs = run_ours(DDIMSampler(NoiseSchedule()), n, noise)
    ref = ddim_scheduler()
    ref.set_timesteps(n)
    torch.testing.assert_close(timesteps, ref.timesteps.float(), atol=0, rtol=0)
    x = noise
    for i, t in enumerate(ref.timesteps):
        x = ref.step(fake_model(x, t.float()), t, x).prev_sample
        torch.testing.assert_close(xs[i], x, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("n", (7, 20))
def test_ddim_with_eta_matches_diffusers_row_by_row(n):
    """eta > 0 draws step noise per row: row i from generators[i] equals diffusers on row i alone with that seed."""
    noise = initial_noise(SHAPE, generators((0, 1, 2)))
    _, xs = run_ours(DDIMSampler(NoiseSchedule(), eta=0.7), n, noise, seeds=(10, 11, 12))
    for row, seed in enumerate((10, 11, 12)):
        ref, g = ddim_scheduler(), torch.Generator().manual_seed(seed)
        ref.set_timesteps(n)
        x = noise[row:row + 1]
        for i, t in enumerate(ref.timesteps):
            x = ref.step(fake_model(x, t.float()), t, x, eta=0.7, generator=g).prev_sample
            torch.testing.assert_close(xs[i][row:row + 1], x, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("n", STEPS)
def test_ddpm_matches_diffusers_row_by_row(n):
    """One generator per row in one batch equals diffusers run on each row alone with that generator, its initial
    noise drawn from the same generator first: image i of a batch is image i generated alone."""
    seeds = (3, 4, 5)
    # the generators draw the initial noise first, then each step's noise, as the single-row reference does
    gens = generators(seeds)
    noise = initial_noise(SHAPE, gens)
    sampler = DDPMSampler(NoiseSchedule())
    sampler.set_timesteps(n)
    x, xs = noise, []
    for i, t in enumerate(sampler.timesteps):
        x = sampler.step(fake_model(x, t.expand(x.shape[0])), i, x, gens)
        xs.append(x)
    for row, seed in enumerate(seeds):
        ref, g = ddpm_scheduler(), torch.Generator().manual_seed(seed)
        ref.set_timesteps(n)
        torch.testing.assert_close(sampler.timesteps, ref.timesteps.float(), atol=0, rtol=0)
        x = torch.randn((1, *SHAPE[1:]), generator=g)
        for i, t in enumerate(ref.timesteps):
            x = ref.step(fake_model(x, t.float()), t, x, generator=g).prev_sample
            torch.testing.assert_close(xs[i][row:row + 1], x, atol=1e-5, rtol=1e-5)
        # both consumed the same draws: the last step (t = 0) adds no noise and draws none
        assert torch.equal(torch.randn(4, generator=gens[row]), torch.randn(4, generator=g))


def test_ddpm_without_generators_uses_the_global_rng():
    noise = torch.randn(SHAPE, generator=torch.Generator().manual_seed(0))
    torch.manual_seed(7)
    a = sample(fake_model, noise, DDPMSampler(NoiseSchedule()), 5)
    torch.manual_seed(7)
    b = sample(fake_model, noise, DDPMSampler(NoiseSchedule()), 5)
    c = sample(fake_model, noise, DDPMSampler(NoiseSchedule()), 5)
    assert torch.equal(a, b) and not torch.allclose(a, c)


@pytest.mark.parametrize("shift", (1.0, 3.0))
@pytest.mark.parametrize("n", STEPS)
def test_euler_matches_diffusers(n, shift):
    noise = torch.randn(SHAPE, generator=torch.Generator().manual_seed(0))
    timesteps, xs = run_ours(EulerSampler(1000, shift=shift), n, noise)
    ref = diffusers.FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=shift)
    ref.set_timesteps(n)
    torch.testing.assert_close(timesteps, ref.timesteps, atol=1e-4, rtol=1e-6)
    x = noise
    for i, t in enumerate(ref.timesteps):
        x = ref.step(fake_model(x, t), t, x).prev_sample
        torch.testing.assert_close(xs[i], x, atol=1e-5, rtol=1e-5)


def test_too_many_steps_are_refused():
    with pytest.raises(ValueError, match="at most 1000"):
        DDIMSampler(NoiseSchedule()).set_timesteps(1001)
    with pytest.raises(ValueError, match="at least 1"):
        EulerSampler().set_timesteps(0)


# ---- sampling end to end ----

@pytest.mark.parametrize("name", ("ddim", "ddpm"))
def test_sampling_with_the_true_noise_recovers_x0(name):
    objective = EpsilonObjective(NoiseSchedule(1000, 0.00085, 0.012, "scaled_linear"))
    x0 = torch.randn(SHAPE, generator=torch.Generator().manual_seed(1))
    abar = objective.schedule.alphas_cumprod

    def true_eps(x, t):
        a = abar[t.long()].reshape(-1, 1, 1, 1)
        return (x - a.sqrt() * x0) / (1 - a).sqrt()

    seen = []
    out = sample(true_eps, initial_noise(SHAPE, generators((0, 1, 2))), make_sampler(name, objective), 4,
                 generators((5, 6, 7)), progress=lambda i, n: seen.append((i, n)))
    torch.testing.assert_close(out, x0, atol=1e-4, rtol=0)
    assert seen == [(1, 4), (2, 4), (3, 4), (4, 4)]


def test_euler_with_the_true_velocity_recovers_x0():
    x0 = torch.randn(SHAPE, generator=torch.Generator().manual_seed(1))

    def true_velocity(x, t):
        sigma = (t / 1000).reshape(-1, 1, 1, 1)
        return (x - x0) / sigma  # noise − x0, with the noise read back from x = (1 − σ)·x0 + σ·noise

    out = sample(true_velocity, torch.randn(SHAPE), make_sampler("euler", FlowObjective()), 3)
    torch.testing.assert_close(out, x0, atol=1e-4, rtol=0)


# ---- guidance, make_sampler, initial noise ----

def test_guidance():
    u, c = torch.randn(2, 5), torch.randn(2, 5)
    torch.testing.assert_close(guidance(u, c, 7.5), u + 7.5 * (c - u))
    torch.testing.assert_close(guidance(u, c, 1.0), c)
    torch.testing.assert_close(guidance(u, c, 0.0), u)


def test_make_sampler_builds_and_refuses():
    eps, flow = EpsilonObjective(), FlowObjective(500)
    assert isinstance(make_sampler("ddpm", eps), DDPMSampler) and isinstance(make_sampler("ddim", eps), DDIMSampler)
    euler = make_sampler("euler", flow)
    assert isinstance(euler, EulerSampler) and euler.num_train_timesteps == 500
    refusals = [("euler", eps, "the euler sampler cannot sample a ddpm (epsilon) model; use ddim or ddpm"),
                ("ddim", flow, "the ddim sampler cannot sample a rectified_flow (velocity) model; use euler"),
                ("ddpm", flow, "the ddpm sampler cannot sample a rectified_flow (velocity) model; use euler"),
                ("heun", eps, "unknown sampler 'heun'")]
    for name, objective, message in refusals:
        with pytest.raises(ValueError) as caught:
            make_sampler(name, objective)
        assert message in str(caught.value) and "\n" not in str(caught.value)


def test_initial_noise_row_i_comes_from_generator_i_alone():
    batch = initial_noise(SHAPE, generators((10, 20, 30)), dtype=torch.float64)
    assert batch.shape == SHAPE and batch.dtype == torch.float64
    for row, seed in enumerate((10, 20, 30)):
        alone = initial_noise((1, *SHAPE[1:]), generators([seed]), dtype=torch.float64)
        assert torch.equal(batch[row:row + 1], alone)
    assert not torch.equal(batch[0], batch[1])
    with pytest.raises(ValueError, match="one generator per row"):
        initial_noise(SHAPE, generators((1, 2)))
