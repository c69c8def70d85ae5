"""Throughput benchmarks, measured side by side in one process (shared machines are noisy).

Every comparison interleaves its contenders for at least 5 repeats, excludes compilation, and prints
the medians and their ratio. Sections:

  core       pinnrun's chunked training step vs. the same step written naively (input derivatives
             by nested reverse-mode jax.grad per point under vmap, one jitted step per Python
             iteration). Target: pinnrun >= 2x naive on a 2-core CPU.
  optim      steps/s of Adam, SOAP and Shampoo on the default Kovasznay config, on a
             PirateNet-sized MLP (width 256, 4 layers, batch 4096) and on KdV's quick budget.
             Target: SOAP at precondition_frequency 2 costs at most 1.10x Adam per step on the
             default Kovasznay config and on the width-256 network. pinnrun runs OpenBLAS single-threaded (see pinnrun/__init__.py);
             `OPENBLAS_NUM_THREADS=2 python scripts/bench.py --section optim` shows the cost of
             threaded LAPACK calls inside SOAP's step on a 2-core CPU.
  alignment  a chunk of 100 steps with and without the alignment diagnostics that
             train.alignment_every=100 adds (per-term gradients, preconditioned scores).
             Target: at most 10% slower.
  checkpoint a chunk of 100 steps with and without an asynchronous Orbax checkpoint after it
             (checkpoint.every=100). Target: at most 10% slower.
  roofline   how close a training step comes to the machine: FLOPs per step from XLA's cost
             analysis of the compiled step, the achieved FLOP/s, and this machine's float32
             matmul rate measured in the same run (a large jnp.dot), for the whole step and for
             its parts (sampling; loss and gradient, which hold the input derivatives; the
             optimizer's update), on the default Kovasznay config and the paper's Allen-Cahn
             network (PirateNet 3 x 256, batch 4096), with Adam and SOAP. Not part of `all`.

Usage: python scripts/bench.py [--section core|optim|alignment|checkpoint|roofline|all] [--repeats 5] [--steps 100]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import optax
from hydra import compose, initialize_config_module

from pinnrun import alignment
from pinnrun.build import build, jax_settings
from pinnrun.config import validate
from pinnrun.optim.factory import build_optimizer
from pinnrun.phases import build_stepper
from pinnrun.trainer import TrainState, make_chunk


def composed(*overrides: str) -> dict:
    with initialize_config_module(config_module="pinnrun.conf", version_base="1.3"):
        return validate(compose(config_name="config", overrides=list(overrides)))


def initial_state(components, seed: int = 0, reference_free: bool = False):
    """The state a run starts from. ``reference_free``: initial-condition targets of zeros instead of the
    PDE's initial field (the cost of a step does not depend on their values; a PDE whose initial
    condition is a reference snapshot, such as Kolmogorov flow, then needs no reference solve)."""
    init_key, points_key, train_key = jax.random.split(jax.random.PRNGKey(seed), 3)
    params = components.model.init(init_key)
    fixed = components.loss.fixed_points(points_key)
    weights = {k: jnp.asarray(v, components.dtype) for k, v in components.weights.items()}
    if reference_free:
        zeros = lambda z: jnp.zeros(components.pde.output_dim, components.dtype)  # noqa: E731
        context = components.loss.context(fixed, None, zeros)
    else:
        context = components.loss.default_context(fixed)
    state = TrainState(jnp.asarray(0, jnp.int32), params, None, weights, train_key, context)
    return state, fixed


def stepper_for(cfg, components, fixed):
    return build_stepper(components.stages[0], components.loss, fixed)


def pinnrun_runner(cfg, components, steps: int, after_chunk: Callable | None = None,
                   reference_free: bool = False) -> tuple[Callable[[], None], float]:
    """(run `steps` steps, compile seconds) with the trainer's own chunk function.

    after_chunk(state) runs on the host after each chunk (the diagnostics the trainer adds there).
    """
    state, fixed = initial_state(components, reference_free=reference_free)
    stepper = stepper_for(cfg, components, fixed)
    state = state._replace(opt_state=stepper.init(state.params, state.key, state.context))
    start = time.perf_counter()
    chunk = jax.jit(make_chunk(stepper, steps)).lower(state).compile()
    if after_chunk is not None:
        jax.block_until_ready(after_chunk(state))
    compile_seconds = time.perf_counter() - start
    holder = {"state": state}

    def run():
        holder["state"], metrics = chunk(holder["state"])
        if after_chunk is not None:
            metrics = (metrics, after_chunk(holder["state"]))
        jax.block_until_ready(metrics)

    return run, compile_seconds


def naive_runner(cfg, components, steps: int) -> tuple[Callable[[], None], float]:
    """The same loss and optimizer, written the way a first PINN script usually is."""
    pde, model = components.pde, components.model
    assert pde.name == "kovasznay", "the naive reference is written for Kovasznay"
    nu = pde.nu
    optimizer, _ = build_optimizer(cfg["optim"])
    state, _ = initial_state(components)
    state = state._replace(opt_state=optimizer.init(state.params))
    params, opt_state, key = state.params, state.opt_state, state.key
    weights = components.weights

    def scalar(i):
        return lambda p, x, y: model.apply(p, jnp.stack([x, y]))[i]

    u, v, p_ = scalar(0), scalar(1), scalar(2)
    d = lambda f, arg: jax.grad(f, argnums=arg)  # noqa: E731

    def residuals(params, x, y):
        ux, uy = d(u, 1)(params, x, y), d(u, 2)(params, x, y)
        vx, vy = d(v, 1)(params, x, y), d(v, 2)(params, x, y)
        uxx, uyy = d(d(u, 1), 1)(params, x, y), d(d(u, 2), 2)(params, x, y)
        vxx, vyy = d(d(v, 1), 1)(params, x, y), d(d(v, 2), 2)(params, x, y)
        px, py = d(p_, 1)(params, x, y), d(p_, 2)(params, x, y)
        uu, vv = u(params, x, y), v(params, x, y)
        ru = uu * ux + vv * uy + px - nu * (uxx + uyy)
        rv = uu * vx + vv * vy + py - nu * (vxx + vyy)
        return ru, rv, ux + vy

    def loss_fn(params, interior, boundary):
        ru, rv, rc = jax.vmap(residuals, in_axes=(None, 0, 0))(params, interior[:, 0], interior[:, 1])
        pred = jax.vmap(lambda z: model.apply(params, z))(boundary)[:, :2]
        exact = pde.exact(boundary)[:, :2]
        return (
            weights["bc"] * jnp.mean((pred - exact) ** 2)
            + weights["ru"] * jnp.mean(ru**2)
            + weights["rv"] * jnp.mean(rv**2)
            + weights["rc"] * jnp.mean(rc**2)
        )

    batch = components.loss.batch_size

    @jax.jit
    def step(params, opt_state, key):
        key, k1, k2 = jax.random.split(key, 3)
        interior = pde.sample_interior(k1, batch)
        boundary = pde.sample_boundary(k2, batch, axes=(0, 1))
        loss, grads = jax.value_and_grad(loss_fn)(params, interior, boundary)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, key, loss

    start = time.perf_counter()
    jax.block_until_ready(step(params, opt_state, key))
    compile_seconds = time.perf_counter() - start
    holder = {"carry": (params, opt_state, key)}

    def run():
        carry = holder["carry"]
        for _ in range(steps):
            *carry, loss = step(*carry)
        jax.block_until_ready(loss)
        holder["carry"] = tuple(carry)

    return run, compile_seconds


def interleaved(runners: dict[str, Callable[[], None]], repeats: int) -> dict[str, float]:
    """Median seconds per call of each runner, calling them in turn `repeats` times."""
    times: dict[str, list[float]] = {name: [] for name in runners}
    for run in runners.values():  # warm-up (first call after compile)
        run()
    for _ in range(repeats):
        for name, run in runners.items():
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(ts) for name, ts in times.items()}


def section_core(args) -> None:
    cfg = composed()
    with jax_settings(cfg):
        components = build(cfg)
        fast, fast_compile = pinnrun_runner(cfg, components, args.steps)
        slow, slow_compile = naive_runner(cfg, components, args.steps)
        medians = interleaved({"pinnrun": fast, "naive": slow}, args.repeats)
    rate = {k: args.steps / v for k, v in medians.items()}
    print(f"== core: default Kovasznay config (4x64 tanh MLP, batch 1024, Adam), device {jax.devices()[0].device_kind}")
    print(f"pinnrun  {rate['pinnrun']:8.1f} steps/s   compile {fast_compile:5.1f} s")
    print(f"naive    {rate['naive']:8.1f} steps/s   compile {slow_compile:5.1f} s")
    print(f"ratio pinnrun/naive: {rate['pinnrun'] / rate['naive']:.2f}x  (target >= 2x; median of {args.repeats} interleaved repeats of {args.steps} steps)")


def section_optim(args) -> None:
    setups = [
        ("default Kovasznay (4x64 tanh, batch 1024)", [], args.steps),
        ("PirateNet-sized MLP (width 256, 4 layers, batch 4096)", ["arch.width=256", "train.batch_size=4096"], args.big_steps),
        ("KdV quick (4x64 tanh, Fourier features, u_xxx, batch 1024)", ["pde=kdv", "train=cpu_quick"], args.steps),
    ]
    for title, overrides, steps in setups:
        rates, compiles = {}, {}
        runners = {}
        for name in ("adam", "soap", "shampoo"):
            cfg = composed(f"optim={name}", *overrides)
            with jax_settings(cfg):
                runners[name], compiles[name] = pinnrun_runner(cfg, build(cfg), steps)
        cfg = composed(*overrides)
        with jax_settings(cfg):
            medians = interleaved(runners, args.repeats)
        rates = {k: steps / v for k, v in medians.items()}
        print(f"== optim: {title}, {steps} steps per repeat, device {jax.devices()[0].device_kind}")
        for name, rate in rates.items():
            print(f"{name:8s} {rate:8.2f} steps/s   compile {compiles[name]:5.1f} s   cost per step vs adam {rates['adam'] / rate:5.2f}x")
    print(f"target: SOAP (precondition_frequency 2) <= 1.10x Adam per step on the default Kovasznay config and on the "
          f"width-256 network; median of {args.repeats} interleaved repeats (noisy on a shared machine: use --repeats 15)")


def section_alignment(args) -> None:
    cfg = composed("train.alignment_every=100")
    with jax_settings(cfg):
        components = build(cfg)
        loss = components.loss
        term_names = loss.term_names
        _, fixed = initial_state(components)

        @jax.jit
        def diagnostics(state):
            points = loss.sample(jax.random.fold_in(state.key, 1), fixed, state.context)
            per_term = loss.per_term_gradients(state.params, points)
            preconditioned = alignment.precondition(state.opt_state, per_term, batched=True)
            return alignment.alignment_metrics(term_names, per_term, preconditioned)

        plain, _ = pinnrun_runner(cfg, components, 100)
        with_alignment, _ = pinnrun_runner(cfg, components, 100, after_chunk=diagnostics)
        medians = interleaved({"off": plain, "every 100": with_alignment}, args.repeats)
    overhead = medians["every 100"] / medians["off"] - 1
    print(f"== alignment: default Kovasznay config, chunks of 100 steps, device {jax.devices()[0].device_kind}")
    print(f"off        {100 / medians['off']:8.1f} steps/s")
    print(f"every 100  {100 / medians['every 100']:8.1f} steps/s")
    print(f"overhead: {100 * overhead:+.1f}%  (target <= 10%; median of {args.repeats} interleaved repeats)")


def section_checkpoint(args) -> None:
    import tempfile

    from pinnrun.checkpoint import Checkpointer

    cfg = composed()
    with jax_settings(cfg), tempfile.TemporaryDirectory() as folder:
        components = build(cfg)
        checkpointer = Checkpointer(folder, keep=3, keep_best=1)
        steps = {"n": 0}

        def save(state):
            steps["n"] += 100
            checkpointer.save(steps["n"], state, {"step": steps["n"], "config": cfg}, metric=1.0 / steps["n"])

        plain, _ = pinnrun_runner(cfg, components, 100)
        with_checkpoints, _ = pinnrun_runner(cfg, components, 100, after_chunk=save)
        medians = interleaved({"off": plain, "every 100": with_checkpoints}, args.repeats)
        checkpointer.close()
    overhead = medians["every 100"] / medians["off"] - 1
    print(f"== checkpoint: default Kovasznay config, asynchronous Orbax save after every chunk of 100 steps, device {jax.devices()[0].device_kind}")
    print(f"off        {100 / medians['off']:8.1f} steps/s")
    print(f"every 100  {100 / medians['every 100']:8.1f} steps/s")
    print(f"overhead: {100 * overhead:+.1f}%  (target <= 10%; median of {args.repeats} interleaved repeats)")


def compiled_flops(compiled) -> float:
    """FLOPs of one call of a compiled function by XLA's cost analysis. A loop's body is counted
    once whatever its trip count, so this is applied to single steps, never to a scanned chunk."""
    analysis = compiled.cost_analysis()
    analysis = analysis[0] if isinstance(analysis, (list, tuple)) else analysis
    return float(analysis.get("flops", float("nan")))


def looped(fn: Callable, carry, steps: int) -> tuple[Callable[[], None], float]:
    """(run ``fn`` ``steps`` times in one jitted loop, FLOPs of one call of ``fn``); ``fn``: carry -> carry."""
    flops = compiled_flops(jax.jit(fn).lower(carry).compile())
    many = jax.jit(lambda c: jax.lax.fori_loop(0, steps, lambda i, c: fn(c), c))
    holder = {"carry": carry}
    jax.block_until_ready(many(carry))  # compile

    def run():
        holder["carry"] = many(holder["carry"])
        jax.block_until_ready(holder["carry"])

    return run, flops


def matmul_rate(n: int = 2048, repeats: int = 5) -> float:
    """FLOP/s of a float32 n x n matmul (2 n^3 FLOPs) on the default device, median of ``repeats``."""
    a = jax.random.normal(jax.random.PRNGKey(0), (n, n), jnp.float32)
    b = jax.random.normal(jax.random.PRNGKey(1), (n, n), jnp.float32)
    dot = jax.jit(jnp.dot)
    jax.block_until_ready(dot(a, b))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(dot(a, b))
        times.append(time.perf_counter() - start)
    return 2.0 * n**3 / statistics.median(times)


def step_parts(cfg, components, steps: int) -> tuple[dict[str, Callable[[], None]], dict[str, float]]:
    """Runners and per-call FLOPs of a whole training step and of its parts."""
    loss = components.loss
    state, fixed = initial_state(components)
    stepper = stepper_for(cfg, components, fixed)
    optimizer, _ = build_optimizer(components.stages[0].optim)  # the optimizer the step uses
    state = state._replace(opt_state=stepper.init(state.params, state.key, state.context))
    batch = loss.sample(jax.random.PRNGKey(5), fixed, state.context)
    grad_fn = jax.grad(lambda p: loss.total(p, state.weights, batch)[0])
    grads = grad_fn(state.params)
    opt_state = optimizer.init(state.params)

    def sample(carry):
        key, acc = carry
        key, sub = jax.random.split(key)
        points = loss.sample(sub, fixed, state.context).points
        return key, acc + sum(jnp.sum(v[:1]) for v in jax.tree.leaves(points))

    def differentiate(params):
        return jax.tree.map(lambda p, g: p - 1e-30 * g, params, grad_fn(params))

    def update(carry):
        opt_state, params = carry
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return opt_state, optax.apply_updates(params, updates)

    runners, flops = {}, {}
    runners["whole step"], _ = pinnrun_runner(cfg, components, steps)
    flops["whole step"] = compiled_flops(jax.jit(make_chunk(stepper, 1)).lower(state).compile())
    runners["sampling"], flops["sampling"] = looped(sample, (state.key, jnp.zeros((), components.dtype)), steps)
    runners["loss and gradient"], flops["loss and gradient"] = looped(differentiate, state.params, steps)
    runners["optimizer update"], flops["optimizer update"] = looped(update, (opt_state, state.params), steps)
    return runners, flops


def section_roofline(args) -> None:
    setups = [
        ("default Kovasznay (4x64 tanh MLP, batch 1024)", [], args.steps),
        ("paper's Allen-Cahn network (PirateNet 3 x 256, batch 4096)", ["pde=allen_cahn", "arch=pirate", "train.batch_size=4096"], args.big_steps),
    ]
    peak = matmul_rate()
    device = jax.devices()[0].device_kind
    print(f"== roofline: device {device}; float32 matmul 2048^2 measured at {peak / 1e9:.1f} GFLOP/s (the reference 'peak')")
    for title, overrides, steps in setups:
        for name in ("adam", "soap"):
            cfg = composed(f"optim={name}", *overrides)
            with jax_settings(cfg):
                runners, flops = step_parts(cfg, build(cfg), steps)
                medians = interleaved(runners, args.repeats)
            print(f"-- {title}, {name}, {steps} steps per repeat")
            for part, seconds in medians.items():
                per_step = seconds / steps
                rate = flops[part] / per_step
                print(f"{part:18s} {flops[part] / 1e6:10.1f} MFLOP/step {1e3 * per_step:9.2f} ms/step "
                      f"{rate / 1e9:7.2f} GFLOP/s {100 * rate / peak:6.1f}% of matmul")
    print(f"FLOPs: XLA cost analysis of one compiled step (or part); times: median of {args.repeats} interleaved repeats")


SECTIONS = {
    "core": section_core,
    "optim": section_optim,
    "alignment": section_alignment,
    "checkpoint": section_checkpoint,
    "roofline": section_roofline,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--section", choices=[*SECTIONS, "all"], default="all")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--big-steps", type=int, default=5, help="steps per repeat on the width-256 network")
    args = parser.parse_args()
    if args.repeats < 5:
        parser.error("--repeats must be at least 5")
    for name, section in SECTIONS.items():
        if args.section == name or (args.section == "all" and name != "roofline"):
            section(args)


if __name__ == "__main__":
    main()
