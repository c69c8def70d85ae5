"""Throughput benchmarks, measured side by side in one process (shared machines are noisy).

Every comparison interleaves its contenders for at least 5 repeats, excludes compilation, and prints
the medians and their ratio. Sections:

  core   pinnrun's chunked training step vs. the same step written naively (input derivatives by
         nested reverse-mode jax.grad per point under vmap, one jitted step per Python iteration).
         Target: pinnrun >= 2x naive on a 2-core CPU.

Usage: python scripts/bench.py [--section core] [--repeats 5] [--steps 100]
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

from pinnrun.build import build, jax_settings
from pinnrun.config import validate
from pinnrun.trainer import TrainState, make_chunk, make_step


def composed(*overrides: str) -> dict:
    with initialize_config_module(config_module="pinnrun.conf", version_base="1.3"):
        return validate(compose(config_name="config", overrides=list(overrides)))


def initial_state(components, seed: int = 0):
    init_key, points_key, train_key = jax.random.split(jax.random.PRNGKey(seed), 3)
    params = components.model.init(init_key)
    fixed = components.loss.fixed_points(points_key)
    weights = {k: jnp.asarray(v, components.dtype) for k, v in components.weights.items()}
    state = TrainState(jnp.asarray(0, jnp.int32), params, components.optimizer.init(params), weights, train_key)
    return state, fixed


def pinnrun_runner(components, steps: int) -> tuple[Callable[[], None], float]:
    """(run `steps` steps, compile seconds) with the trainer's own chunk function."""
    state, fixed = initial_state(components)
    start = time.perf_counter()
    chunk = jax.jit(make_chunk(make_step(components.loss, components.optimizer, fixed), steps)).lower(state).compile()
    compile_seconds = time.perf_counter() - start
    holder = {"state": state}

    def run():
        holder["state"], metrics = chunk(holder["state"])
        jax.block_until_ready(metrics)

    return run, compile_seconds


def naive_runner(components, steps: int) -> tuple[Callable[[], None], float]:
    """The same loss and optimizer, written the way a first PINN script usually is."""
    pde, model = components.pde, components.model
    assert pde.name == "kovasznay", "the naive reference is written for Kovasznay"
    nu = pde.nu
    optimizer = components.optimizer
    state, _ = initial_state(components)
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
        fast, fast_compile = pinnrun_runner(components, args.steps)
        slow, slow_compile = naive_runner(components, args.steps)
        medians = interleaved({"pinnrun": fast, "naive": slow}, args.repeats)
    rate = {k: args.steps / v for k, v in medians.items()}
    print(f"== core: default Kovasznay config (4x64 tanh MLP, batch 1024, Adam), device {jax.devices()[0].device_kind}")
    print(f"pinnrun  {rate['pinnrun']:8.1f} steps/s   compile {fast_compile:5.1f} s")
    print(f"naive    {rate['naive']:8.1f} steps/s   compile {slow_compile:5.1f} s")
    print(f"ratio pinnrun/naive: {rate['pinnrun'] / rate['naive']:.2f}x  (target >= 2x; median of {args.repeats} interleaved repeats of {args.steps} steps)")


SECTIONS = {"core": section_core}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--section", choices=[*SECTIONS, "all"], default="all")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps", type=int, default=100)
    args = parser.parse_args()
    if args.repeats < 5:
        parser.error("--repeats must be at least 5")
    for name, section in SECTIONS.items():
        if args.section in (name, "all"):
            section(args)


if __name__ == "__main__":
    main()
