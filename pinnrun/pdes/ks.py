"""1-D Kuramoto-Sivashinsky equation, chaotic regime (BENCHMARKS.md section 5).

    u_t + alpha u u_x + beta u_xx + gamma u_xxxx = 0,  x in [0, 2 pi], t in [0, 1]
    alpha = 100/16, beta = 100/16^2, gamma = 100/16^4;  u(0, x) = cos(x) (1 + sin(x)), periodic
Periodicity comes from the architecture's periodic embedding, so there is no boundary term.
Reference: ETDRK4 Fourier spectral (pinnrun.reference) on a 251 x 512 grid.
"""

from __future__ import annotations

import math

import jax.numpy as jnp

from pinnrun.derivatives import derivatives
from pinnrun.pdes.base import Evolution1D, PointSet, Reference


class KuramotoSivashinsky(Evolution1D):
    name = "ks"

    def __init__(
        self,
        alpha: float = 100.0 / 16,
        beta: float = 100.0 / 16**2,
        gamma: float = 100.0 / 16**4,
        t_max: float = 1.0,
        eval_resolution=(251, 512),
        weights=None,
    ):
        # gamma > 0 keeps the problem well posed; beta > 0 (anti-diffusion) drives the chaos.
        for key, value in (("alpha", alpha), ("gamma", gamma), ("t_max", t_max)):
            if not value > 0:
                raise ValueError(f"pde.{key} must be positive; got {value}")
        if not math.isfinite(beta):
            raise ValueError(f"pde.beta must be a finite number; got {beta}")
        if len(eval_resolution) != 2 or min(eval_resolution) < 2:
            raise ValueError(f"pde.eval_resolution must be [nt, nx], each >= 2; got {list(eval_resolution)}")
        super().__init__({"t": (0.0, t_max), "x": (0.0, 2 * math.pi)}, weights)
        self.alpha = float(alpha)
        self.beta = float(beta)
        self.gamma = float(gamma)
        self.eval_resolution = tuple(int(n) for n in eval_resolution)

    @property
    def periodic_axes(self):
        lo, hi = self.bounds["x"]
        return {1: hi - lo}

    def u0(self, x, xp=jnp):
        return xp.cos(x) * (1 + xp.sin(x))

    def residual(self, f, z):
        _, u_t = derivatives(f, z, axis=0, order=1)
        u, u_x, u_xx, _, u_xxxx = derivatives(f, z, axis=1, order=4)
        return u_t + self.alpha * u * u_x + self.beta * u_xx + self.gamma * u_xxxx

    def point_sets(self):
        def interior(f, z):
            return {"res": self.residual(f, z)}

        return (
            self.initial_point_set(),
            PointSet("interior", ("res",), self.sample_interior, interior),
        )

    def reference(self):
        from pinnrun import reference

        nt, nx = self.eval_resolution
        data = reference.load(
            self.name, alpha=self.alpha, beta=self.beta, gamma=self.gamma, T=self.bounds["t"][1], nt=nt, nx=nx
        )
        return Reference(axes={"t": data["t"], "x": data["x"]}, fields={"u": data["u"]})
