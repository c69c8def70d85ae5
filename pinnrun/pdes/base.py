"""The PDE interface: what a problem declares, and nothing about training.

A PDE names its inputs and fields, its domain, its loss terms and its reference solution. Loss terms
come in point sets: a sampler for points plus a function that returns each term's pointwise residual
``[m]`` of the network ``f`` (one point in, all fields out). A term's loss is the mean of residual**2
over points and components. The trainer vmaps, weights and sums the terms.

Initial conditions are data, not closures: an initial point set declares a ``target(source, z)``, the
values its residuals compare against as a function of a source field. A stage of the run evaluates
it ONCE on the set's fixed points, with the PDE's own ``initial_field`` as the source or, when time-
marching, the previous window's network, and hands the values to every step as an array; so all
windows of a run share one compiled step.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array
Field = Callable[[Array], Array]

TERM_KINDS = ("residual", "initial", "boundary", "data")


@dataclasses.dataclass(frozen=True)
class PointSet:
    """A set of collocation points and the loss terms evaluated on them.

    sample: (key, batch_size) -> [n, d] points; drawn every step unless ``fixed``.
    residuals: (f, z) -> {term: [m] residual at the single point z}; all terms of a point set are
        computed together, so they share the network's derivatives at that point.
    kind: "residual" point sets of time-dependent PDEs take part in causal weighting.
    fixed: points are drawn once (from the run's seed) and reused every step.
    target: (source, z) -> [k] values that ``residuals(f, z, y)`` compares the network against (the
        initial condition: the value, and for second-order-in-time problems the velocity, of a source
        field at z). Only for fixed sets: the trainer evaluates it once per stage.
    """

    name: str
    terms: tuple[str, ...]
    sample: Callable[[Array, int], Array]
    residuals: Callable[..., Mapping[str, Array]]
    kind: str = "residual"
    fixed: bool = False
    target: Callable[[Field, Array], Array] | None = None

    def __post_init__(self) -> None:
        if self.kind not in TERM_KINDS:
            raise ValueError(f"PointSet.kind must be one of {', '.join(TERM_KINDS)}; got {self.kind!r}")
        if self.target is not None and not self.fixed:
            raise ValueError(f"PointSet {self.name!r}: a target needs fixed points")

    def evaluate(self, f: Field, z: Array, y: Array | None = None) -> Mapping[str, Array]:
        """The residuals at one point (``y``: the target there, for sets that have one)."""
        return self.residuals(f, z) if self.target is None else self.residuals(f, z, y)


@dataclasses.dataclass(frozen=True)
class Reference:
    """A reference solution on a tensor grid.

    axes: input name -> 1-D coordinates, in the PDE's input order; fields: name -> array shaped by
    the axes' lengths.
    """

    axes: Mapping[str, np.ndarray]
    fields: Mapping[str, np.ndarray]

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(len(a) for a in self.axes.values())

    def points(self) -> np.ndarray:
        """All grid points as [N, d], in C order of the grid."""
        mesh = np.meshgrid(*self.axes.values(), indexing="ij")
        return np.stack([m.reshape(-1) for m in mesh], axis=-1)


class PDE:
    """Base class of a problem. Subclasses set the class attributes and implement the methods."""

    name: str = "pde"
    input_names: tuple[str, ...] = ()
    field_names: tuple[str, ...] = ()
    # Fields defined only up to a constant (pressure): evaluation removes the mean difference.
    gauge_fields: tuple[str, ...] = ()

    def __init__(self, bounds: Mapping[str, tuple[float, float]], weights: Mapping[str, float] | None = None):
        self.bounds = {name: (float(bounds[name][0]), float(bounds[name][1])) for name in self.input_names}
        self._weights = dict(weights or {})

    # ----- declared by each problem -----
    def point_sets(self) -> tuple[PointSet, ...]:
        raise NotImplementedError

    def reference(self) -> Reference:
        raise NotImplementedError

    # ----- derived, shared by all problems -----
    @property
    def input_dim(self) -> int:
        return len(self.input_names)

    @property
    def output_dim(self) -> int:
        return len(self.field_names)

    @property
    def term_names(self) -> tuple[str, ...]:
        return tuple(term for ps in self.point_sets() for term in ps.terms)

    @property
    def time_axis(self) -> int | None:
        return self.input_names.index("t") if "t" in self.input_names else None

    @property
    def periodic_axes(self) -> dict[int, float]:
        """Input axis -> period, for inputs on which the solution is periodic."""
        return {}

    def default_weights(self) -> dict[str, float]:
        weights = {term: 1.0 for term in self.term_names}
        unknown = set(self._weights) - set(weights)
        if unknown:
            raise ValueError(
                f"pde.weights: unknown loss term(s) {', '.join(sorted(unknown))}; "
                f"terms of {self.name}: {', '.join(weights)}"
            )
        weights.update({k: float(v) for k, v in self._weights.items()})
        return weights

    def initial_condition(self) -> tuple[np.ndarray, np.ndarray] | None:
        """(points [n, d], values [n, output_dim]) at t = t0, for time-dependent problems."""
        return None

    def initial_field(self, z: Array) -> Array:
        """The initial condition as a field of z (all outputs), the source of the first stage's targets."""
        raise NotImplementedError(f"{self.name} declares no initial condition")

    # ----- sampling helpers for subclasses -----
    def lower(self) -> Array:
        return jnp.array([self.bounds[n][0] for n in self.input_names])

    def upper(self) -> Array:
        return jnp.array([self.bounds[n][1] for n in self.input_names])

    def sample_interior(self, key: Array, n: int) -> Array:
        """Uniform points in the box domain."""
        lo, hi = self.lower(), self.upper()
        return lo + (hi - lo) * jax.random.uniform(key, (n, self.input_dim))

    def sample_face(self, key: Array, n: int, axis: int, side: int) -> Array:
        """Uniform points on the face where input ``axis`` is at its lower (side 0) or upper (1) end."""
        points = self.sample_interior(key, n)
        value = self.bounds[self.input_names[axis]][side]
        return points.at[:, axis].set(value)

    def sample_boundary(self, key: Array, n: int, axes: tuple[int, ...]) -> Array:
        """Uniform points on all faces normal to ``axes``, split evenly across the faces."""
        faces = [(axis, side) for axis in axes for side in (0, 1)]
        keys = jax.random.split(key, len(faces))
        per_face = -(-n // len(faces))
        points = [self.sample_face(k, per_face, a, s) for k, (a, s) in zip(keys, faces)]
        return jnp.concatenate(points, axis=0)[:n]


def check_positive(**values: float) -> None:
    """ValueError naming the first ``pde.<key>`` that is not a positive number."""
    for key, value in values.items():
        if not value > 0:
            raise ValueError(f"pde.{key} must be positive; got {value}")


class Evolution1D(PDE):
    """A time-dependent problem on (t, x) whose initial condition lives on the evaluation x-grid.

    Subclasses give ``u0(x, xp)``, the pointwise ``residual(f, z)`` of the equation (the "res" term)
    and ``reference_parameters()`` (the equation's parameters, as ``pinnrun.reference`` names them);
    ``periodic_x`` declares the x axis periodic. The initial-condition term compares the network with
    its target at the window's start time: ``u0`` (``initial_field``) for the first time window, the
    previous window's network for later ones (the trainer's stages provide it).
    """

    input_names = ("t", "x")
    field_names = ("u",)
    periodic_x: bool = False

    def __init__(self, x_bounds: tuple[float, float], t_max: float, eval_resolution, weights=None):
        check_positive(t_max=t_max)
        if len(eval_resolution) != 2 or min(eval_resolution) < 2:
            raise ValueError(f"pde.eval_resolution must be [nt, nx], each >= 2; got {list(eval_resolution)}")
        super().__init__({"t": (0.0, t_max), "x": x_bounds}, weights)
        self.t_max = float(t_max)
        self.eval_resolution = tuple(int(n) for n in eval_resolution)

    def u0(self, x, xp=jnp):
        raise NotImplementedError

    def residual(self, f: Field, z: Array) -> Array:
        raise NotImplementedError

    def reference_parameters(self) -> dict[str, float]:
        raise NotImplementedError

    @property
    def periodic_axes(self) -> dict[int, float]:
        lo, hi = self.bounds["x"]
        return {1: hi - lo} if self.periodic_x else {}

    def extra_point_sets(self) -> tuple[PointSet, ...]:
        """Point sets besides the initial condition and the residual (boundary terms)."""
        return ()

    def zero_boundary_point_set(self) -> PointSet:
        """u = 0 at both ends of x (term "bc"), on a quarter of the batch."""

        def boundary(f, z):
            return {"bc": f(z)}

        return PointSet("boundary", ("bc",), lambda key, n: self.sample_boundary(key, max(n // 4, 1), axes=(1,)), boundary, "boundary")

    def point_sets(self) -> tuple[PointSet, ...]:
        def interior(f, z):
            return {"res": self.residual(f, z)}

        interior_set = PointSet("interior", ("res",), self.sample_interior, interior)
        return (self.initial_point_set(), *self.extra_point_sets(), interior_set)

    def reference(self) -> Reference:
        """The whole horizon's reference from pinnrun's spectral solvers (cached on disk)."""
        from pinnrun import reference

        nt, nx = self.eval_resolution
        data = reference.load(self.name, **self.reference_parameters(), T=self.t_max, nt=nt, nx=nx)
        return Reference(axes={"t": data["t"], "x": data["x"]}, fields={"u": data["u"]})

    def initial_field(self, z: Array) -> Array:
        return jnp.atleast_1d(self.u0(z[1]))

    def x_grid(self) -> np.ndarray:
        return np.linspace(*self.bounds["x"], self.eval_resolution[1])

    def initial_points(self) -> np.ndarray:
        x = self.x_grid()
        return np.stack([np.full_like(x, self.bounds["t"][0]), x], axis=-1)

    def initial_condition(self):
        points = self.initial_points()
        values = jax.vmap(self.initial_field)(jnp.asarray(points))
        return points, np.asarray(values, np.float64).reshape(len(points), -1)

    def initial_values(self, source: Field, z: Array) -> Array:
        """What the initial-condition terms compare against: the source's value at z."""
        return source(z)

    def initial_residuals(self, f: Field, z: Array, y: Array) -> dict[str, Array]:
        return {"ic": f(z) - y}

    def initial_point_set(self) -> PointSet:
        """The fixed initial-condition points: the x-grid at the start time."""
        points = jnp.asarray(self.initial_points())
        zero = lambda z: jnp.zeros(self.output_dim)  # noqa: E731
        terms = tuple(self.initial_residuals(zero, points[0], self.initial_values(zero, points[0])))
        return PointSet("initial", terms, lambda key, n: points, self.initial_residuals, "initial", fixed=True, target=self.initial_values)
