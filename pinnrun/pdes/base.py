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
    size: batch size -> points per step, the set's default (None: the batch size; for a fixed set,
        the whole set every step). The PDE's ``points`` config replaces it: a fixed set then feeds a
        random draw of that many of its points (with their targets) each step.
    """

    name: str
    terms: tuple[str, ...]
    sample: Callable[[Array, int], Array]
    residuals: Callable[..., Mapping[str, Array]]
    kind: str = "residual"
    fixed: bool = False
    target: Callable[[Field, Array], Array] | None = None
    size: Callable[[int], int] | None = None

    def __post_init__(self) -> None:
        if self.kind not in TERM_KINDS:
            raise ValueError(f"PointSet.kind must be one of {', '.join(TERM_KINDS)}; got {self.kind!r}")
        if self.target is not None and not self.fixed:
            raise ValueError(f"PointSet {self.name!r}: a target needs fixed points")

    def evaluate(self, f: Field, z: Array, y: Array | None = None) -> Mapping[str, Array]:
        """The residuals at one point (``y``: the target there, for sets that have one)."""
        return self.residuals(f, z) if self.target is None else self.residuals(f, z, y)


@dataclasses.dataclass(frozen=True)
class Profile:
    """A line through the reference grid on which evaluation plots a field: ``field`` along input
    ``along``, the other inputs held at the grid values nearest ``at`` (e.g. u(x = 0.5, y))."""

    field: str
    along: str
    at: Mapping[str, float]


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
    # Fields drawn on a diverging colour scale centred at 0 (velocities, vorticity); others on viridis.
    signed_fields: tuple[str, ...] = ()

    def __init__(
        self,
        bounds: Mapping[str, tuple[float, float]],
        weights: Mapping[str, float] | None = None,
        points: Mapping[str, int | None] | None = None,
    ):
        self.bounds = {name: (float(bounds[name][0]), float(bounds[name][1])) for name in self.input_names}
        self._weights = dict(weights or {})
        self._points = dict(points or {})
        for name, count in self._points.items():
            if count is not None and (isinstance(count, bool) or not isinstance(count, int) or count < 1):
                raise ValueError(f"pde.points.{name} must be a positive integer or null; got {count!r}")

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

    def points_per_step(self, point_set: PointSet, batch_size: int) -> int | None:
        """How many of ``point_set``'s points a step uses: ``pde.points.<set>``, else the set's default
        (None: a fixed set's every point)."""
        if point_set.name in self._points and self._points[point_set.name] is not None:
            return int(self._points[point_set.name])
        if point_set.size is not None:
            return int(point_set.size(batch_size))
        return None if point_set.fixed else int(batch_size)

    def check_points(self) -> None:
        """ValueError naming a ``pde.points`` key that is not one of the problem's point sets."""
        names = [ps.name for ps in self.point_sets()]
        unknown = sorted(set(self._points) - set(names))
        if unknown:
            raise ValueError(f"pde.points.{unknown[0]}: not a point set of {self.name}; point sets: {', '.join(names)}")

    # ----- evaluation -----
    def derived(self, fields: Mapping[str, Array], xp=jnp) -> dict[str, Array]:
        """Fields computed pointwise from the outputs that evaluation reports too (``xp``: numpy for
        the reference, jax.numpy for the network), e.g. |A| of a complex field."""
        return {}

    def derived_outputs(self, f: Field, z: Array) -> dict[str, Array]:
        """The derived fields of the network at one point. A field that needs the network's derivatives
        (a vorticity) overrides this, and its reference provides the same field."""
        values = f(z)
        return self.derived({name: values[i] for i, name in enumerate(self.field_names)}, jnp)

    @property
    def evaluated_names(self) -> tuple[str, ...]:
        """Names of the fields evaluation reports: the outputs, then the derived fields (those of
        ``derived_outputs``, traced once on a constant network)."""
        names: list[str] = []

        def trace(z):
            outputs = self.derived_outputs(lambda point: jnp.zeros(self.output_dim), z)
            names.extend(outputs)
            return outputs

        jax.eval_shape(trace, jnp.zeros(self.input_dim))
        return self.field_names + tuple(names)

    def background(self, z: Array) -> Array | None:
        """A known state the network may learn its departure from (``arch.background: true``: the model
        returns background(z) + the network's output, at one point z [input_dim] -> [output_dim]);
        None where the problem states none. Built from jax primitives that jet differentiates (exp,
        log, tanh, ...), since the residuals take its derivatives too."""
        return None

    def profiles(self) -> tuple[Profile, ...]:
        """Lines on which each curriculum stage's network is plotted against the reference
        (``stages/<name>_profiles.png``); none by default."""
        return ()

    def provenance(self) -> dict:
        """Where the reference comes from (recorded in every run's summary.json)."""
        return {"name": self.name, "solver": "not recorded"}

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


def check_resolution(eval_resolution, input_names: tuple[str, ...]) -> tuple[int, ...]:
    """The evaluation grid's points per input as ints; ValueError naming pde.eval_resolution unless it
    is one integer >= 2 per input."""
    shape = ", ".join(f"n{name}" for name in input_names)
    values = list(eval_resolution) if isinstance(eval_resolution, (list, tuple)) else None
    if (values is None or len(values) != len(input_names)
            or any(isinstance(n, bool) or not isinstance(n, int) or n < 2 for n in values)):
        raise ValueError(f"pde.eval_resolution must be [{shape}], integers >= 2; got {eval_resolution!r}")
    return tuple(values)


def check_positive(**values: float) -> None:
    """ValueError naming the first ``pde.<key>`` that is not a positive number."""
    for key, value in values.items():
        if not value > 0:
            raise ValueError(f"pde.{key} must be positive; got {value}")


class Evolution(PDE):
    """A time-dependent problem on (t, *space): one or more space axes, each periodic or walled, and
    one or more named fields, with the initial condition on the evaluation grid at t0.

    Subclasses set ``space_names``, ``field_names``, ``periodic`` (the periodic space axes) and
    ``residual_terms``, and give ``u0(*space, xp)`` (the initial fields by formula: one array, or one
    per field) or override ``initial_field``, the pointwise ``residual(f, z)`` (an array for a single
    term, else term -> array), ``reference_parameters()`` (the equation's parameters as
    ``pinnrun.reference`` names them) and ``extra_point_sets()`` (boundary terms and the like).

    The initial-condition terms compare the network with its targets at the window's start time: the
    initial field for the first time window, the previous window's network for later ones (the
    trainer's stages provide them). The initial points are the evaluation grid's space points at t0;
    ``pde.points.initial: n`` feeds a random n of them each step instead of all.
    """

    space_names: tuple[str, ...] = ("x",)
    field_names = ("u",)
    periodic: tuple[str, ...] = ()
    residual_terms: tuple[str, ...] = ("res",)

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        cls.input_names = ("t", *cls.space_names)

    def __init__(
        self,
        space_bounds: Mapping[str, tuple[float, float]],
        t_max: float,
        eval_resolution,
        weights=None,
        points=None,
    ):
        check_positive(t_max=t_max)
        resolution = check_resolution(eval_resolution, self.input_names)
        super().__init__({"t": (0.0, t_max), **space_bounds}, weights, points)
        self.t_max = float(t_max)
        self.eval_resolution = resolution

    def u0(self, *space, xp=jnp):
        raise NotImplementedError

    def residual(self, f: Field, z: Array):
        raise NotImplementedError

    def reference_parameters(self) -> dict[str, float]:
        raise NotImplementedError

    @property
    def periodic_axes(self) -> dict[int, float]:
        out = {}
        for name in self.periodic:
            lo, hi = self.bounds[name]
            out[self.input_names.index(name)] = hi - lo
        return out

    @property
    def walled_axes(self) -> tuple[int, ...]:
        """Input indices of the space axes that are not periodic."""
        return tuple(i for i, name in enumerate(self.input_names) if i > 0 and name not in self.periodic)

    def extra_point_sets(self) -> tuple[PointSet, ...]:
        """Point sets besides the initial condition and the residual (boundary terms)."""
        return ()

    def zero_boundary_point_set(self, axes: tuple[int, ...] | None = None) -> PointSet:
        """All fields = 0 on the faces normal to ``axes`` (default: the walled axes), term "bc", on a
        quarter of the batch unless ``pde.points.boundary`` says otherwise."""
        axes = self.walled_axes if axes is None else axes

        def boundary(f, z):
            return {"bc": f(z)}

        return PointSet(
            "boundary", ("bc",), lambda key, n: self.sample_boundary(key, n, axes=axes), boundary, "boundary",
            size=lambda batch: max(batch // 4, 1),
        )

    def point_sets(self) -> tuple[PointSet, ...]:
        def interior(f, z):
            res = self.residual(f, z)
            return res if isinstance(res, Mapping) else {self.residual_terms[0]: res}

        interior_set = PointSet("interior", self.residual_terms, self.sample_interior, interior)
        return (self.initial_point_set(), *self.extra_point_sets(), interior_set)

    # ----- reference -----
    def reference_grid(self) -> dict[str, float | int]:
        """The evaluation grid as ``pinnrun.reference`` overrides (horizon, snapshots, points per axis)."""
        nt, nx, *rest = self.eval_resolution
        if any(n != nx for n in rest):
            raise ValueError(f"pde.eval_resolution: the reference grid has as many points on every space axis; got {list(self.eval_resolution)}")
        return {"T": self.t_max, "nt": nt, "nx": nx}

    def reference(self) -> Reference:
        """The whole horizon's reference from pinnrun's solvers (cached on disk), with the derived fields."""
        from pinnrun import reference

        data = reference.load(self.name, **self.reference_parameters(), **self.reference_grid())
        fields = {name: data[name] for name in self.field_names}
        fields.update(self.derived(fields, np))
        # Derived fields that need derivatives (a vorticity) come with the reference's own data.
        fields.update({name: data[name] for name in self.evaluated_names if name not in fields and name in data})
        return Reference(axes={name: data[name] for name in self.input_names}, fields=fields)

    def provenance(self) -> dict:
        from pinnrun import reference

        return reference.provenance(self.name, **self.reference_parameters(), **self.reference_grid())

    # ----- initial condition -----
    def initial_field(self, z: Array) -> Array:
        values = self.u0(*z[1:])
        return jnp.atleast_1d(jnp.stack(values) if isinstance(values, (tuple, list)) else values)

    def space_grid(self) -> list[np.ndarray]:
        """The evaluation grid's coordinates on each space axis (both ends included)."""
        return [np.linspace(*self.bounds[name], n) for name, n in zip(self.space_names, self.eval_resolution[1:])]

    def initial_points(self) -> np.ndarray:
        """[n, 1 + d]: the space grid's points (C order) at the start time."""
        mesh = np.meshgrid(*self.space_grid(), indexing="ij")
        space = [m.reshape(-1) for m in mesh]
        return np.stack([np.full_like(space[0], self.bounds["t"][0]), *space], axis=-1)

    def initial_condition(self):
        points = self.initial_points()
        values = jax.vmap(self.initial_field)(jnp.asarray(points))
        return points, np.asarray(values, np.float64).reshape(len(points), -1)

    def initial_values(self, source: Field, z: Array) -> Array:
        """What the initial-condition terms compare against: the source's value at z."""
        return source(z)

    def initial_residuals(self, f: Field, z: Array, y: Array) -> dict[str, Array]:
        """One term per field ("ic" for a single field, "ic_<field>" for several)."""
        diff = f(z) - y
        if self.output_dim == 1:
            return {"ic": diff}
        return {f"ic_{name}": diff[i : i + 1] for i, name in enumerate(self.field_names)}

    def initial_point_set(self) -> PointSet:
        """The fixed initial-condition points: the space grid at the start time."""
        points = jnp.asarray(self.initial_points())
        zero = lambda z: jnp.zeros(self.output_dim)  # noqa: E731
        terms = tuple(self.initial_residuals(zero, points[0], self.initial_values(zero, points[0])))
        return PointSet("initial", terms, lambda key, n: points, self.initial_residuals, "initial", fixed=True, target=self.initial_values)


def grid_field(axes: list[np.ndarray], values: np.ndarray) -> Field:
    """A field given on a tensor grid (``values[..., k]``, axes of the space inputs) as a function of
    z = (t, *space): multilinear interpolation, exact at the grid's nodes. For initial conditions
    given as data (a solver's snapshot) rather than a formula."""
    axes_j = [jnp.asarray(a) for a in axes]
    table = jnp.asarray(values)

    def field(z):
        corner, frac = [], []
        for i, a in enumerate(axes_j):
            x = z[1 + i]
            j = jnp.clip(jnp.searchsorted(a, x, side="right") - 1, 0, len(a) - 2)
            corner.append(j)
            frac.append(jnp.clip((x - a[j]) / (a[j + 1] - a[j]), 0.0, 1.0))
        out = 0.0
        for bits in np.ndindex(*(2,) * len(axes_j)):  # the 2^d corners of the cell
            weight = 1.0
            index = []
            for b, j, s in zip(bits, corner, frac):
                weight = weight * (s if b else 1.0 - s)
                index.append(j + b)
            out = out + weight * table[tuple(index)]
        return jnp.atleast_1d(out)

    return field
