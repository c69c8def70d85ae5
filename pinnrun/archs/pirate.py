"""PirateNet (Wang et al. 2024, "PirateNets: physics-informed deep learning with residual
adaptive networks") with physics-informed initialisation of the output layer.

Residual stream. Following the reference implementation, the third dense layer of every block
maps back to the embedding dimension e, so the residual stream x has the embedding's width and
any Fourier ``dim`` works (e = 2 * fourier.dim, default fourier.dim = width // 2 so e = width;
without Fourier features e is the (periodic-embedded) input dimension). Gates U, V and the first
two dense layers of each block have ``width`` units.

    x = phi(z);  U = act(Dense(x));  V = act(Dense(x))
    per block:  f = act(Dense(x));  z1 = f*U + (1-f)*V
                g = act(Dense(z1)); z2 = g*U + (1-g)*V
                h = act(Dense(z2))             # -> e units
                x = alpha*h + (1-alpha)*x      # alpha: trainable scalar, init 0
    out = Dense(x)                             # linear

At init every alpha is 0, so out = phi(z) @ W + b exactly (a linear model of the embedding).
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from .embeddings import Embedding
from .layers import Model, Params, dense_apply, dense_init, subkeys, dense_set_kernel


def build_pirate(
    *,
    input_dim: int,
    output_dim: int,
    width: int,
    num_blocks: int,
    act: Callable,
    embedding: Embedding,
    rwf: tuple[float, float] | None,
    dtype=jnp.float32,
) -> Model:
    e = embedding.out_dim

    def init(key: jax.Array) -> Params:
        k_emb, k_u, k_v, k_out, *k_blocks = subkeys(key, num_blocks + 4)
        blocks = []
        for kb in k_blocks:
            k1, k2, k3 = subkeys(kb, 3)
            blocks.append({
                "dense1": dense_init(k1, e, width, rwf=rwf, dtype=dtype),
                "dense2": dense_init(k2, width, width, rwf=rwf, dtype=dtype),
                "dense3": dense_init(k3, width, e, rwf=rwf, dtype=dtype),
                "alpha": jnp.zeros((), dtype),
            })
        return {
            "embedding": embedding.init(k_emb, dtype),
            "encoder_u": dense_init(k_u, e, width, rwf=rwf, dtype=dtype),
            "encoder_v": dense_init(k_v, e, width, rwf=rwf, dtype=dtype),
            "blocks": blocks,
            "output": dense_init(k_out, e, output_dim, rwf=rwf, dtype=dtype),
        }

    def features(params: Params, z: jax.Array) -> jax.Array:
        """Pre-output hidden state x [e] for one point (= phi(z) while all alpha are 0)."""
        x = embedding.apply(params["embedding"], jnp.asarray(z, dtype))
        u = act(dense_apply(params["encoder_u"], x))
        v = act(dense_apply(params["encoder_v"], x))
        for blk in params["blocks"]:
            f = act(dense_apply(blk["dense1"], x))
            z1 = f * u + (1.0 - f) * v
            g = act(dense_apply(blk["dense2"], z1))
            z2 = g * u + (1.0 - g) * v
            h = act(dense_apply(blk["dense3"], z2))
            alpha = blk["alpha"]
            x = alpha * h + (1.0 - alpha) * x
        return x

    def apply(params: Params, z: jax.Array) -> jax.Array:
        return dense_apply(params["output"], features(params, z))

    def fit_output(params: Params, points: jax.Array, targets: jax.Array) -> Params:
        """Physics-informed init: least-squares fit of the output layer (kernel and bias) so that
        apply(params, points[i]) ~= targets[i]. points: [n, input_dim]; targets: [n, output_dim]
        (or [n] when output_dim == 1). Uses the current pre-output features, which equal the
        embedding at init (alpha = 0). Other params are unchanged; RWF scales s are kept."""
        points = jnp.asarray(points, dtype)
        targets = jnp.asarray(targets, dtype)
        if targets.ndim == 1:
            targets = targets[:, None]
        if points.ndim != 2 or points.shape[1] != input_dim:
            raise ValueError(f"fit_output: points must have shape [n, {input_dim}], got {points.shape}")
        if targets.shape != (points.shape[0], output_dim):
            raise ValueError(
                f"fit_output: targets must have shape [{points.shape[0]}, {output_dim}], got {targets.shape}"
            )
        feats = jax.vmap(features, in_axes=(None, 0))(params, points)  # [n, e]
        design = jnp.concatenate([feats, jnp.ones((feats.shape[0], 1), feats.dtype)], axis=1)
        coef, *_ = jnp.linalg.lstsq(design, targets)  # [e + 1, output_dim], min-norm
        out = dict(params)
        out["output"] = dense_set_kernel(params["output"], coef[:-1], coef[-1])
        return out

    return Model(init=init, apply=apply, fit_output=fit_output)
