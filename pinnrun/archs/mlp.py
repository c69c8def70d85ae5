"""Plain MLP and Modified MLP (Wang, Teng & Perdikaris 2021), single-point apply."""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from .embeddings import Embedding
from .layers import Model, Params, dense_apply, dense_init, subkeys


def build_mlp(
    *,
    input_dim: int,
    output_dim: int,
    width: int,
    depth: int,
    act: Callable,
    embedding: Embedding,
    rwf: tuple[float, float] | None,
    dtype=jnp.float32,
) -> Model:
    """phi(z) -> depth x [Dense(width), act] -> Dense(output_dim) (linear)."""
    del input_dim

    def init(key: jax.Array) -> Params:
        k_emb, k_out, *k_hidden = subkeys(key, depth + 2)
        hidden, fan_in = [], embedding.out_dim
        for k in k_hidden:
            hidden.append(dense_init(k, fan_in, width, rwf=rwf, dtype=dtype))
            fan_in = width
        return {
            "embedding": embedding.init(k_emb, dtype),
            "hidden": hidden,
            "output": dense_init(k_out, width, output_dim, rwf=rwf, dtype=dtype),
        }

    def apply(params: Params, z: jax.Array) -> jax.Array:
        h = embedding.apply(params["embedding"], jnp.asarray(z, dtype))
        for layer in params["hidden"]:
            h = act(dense_apply(layer, h))
        return dense_apply(params["output"], h)

    return Model(init=init, apply=apply)


def build_modified_mlp(
    *,
    input_dim: int,
    output_dim: int,
    width: int,
    depth: int,
    act: Callable,
    embedding: Embedding,
    rwf: tuple[float, float] | None,
    dtype=jnp.float32,
) -> Model:
    """h0 = phi(z); U = act(h0 Wu + bu), V = act(h0 Wv + bv);
    depth x [h = act(h W + b); h = h * U + (1 - h) * V]; output linear."""
    del input_dim

    def init(key: jax.Array) -> Params:
        k_emb, k_u, k_v, k_out, *k_hidden = subkeys(key, depth + 4)
        e = embedding.out_dim
        hidden, fan_in = [], e
        for k in k_hidden:
            hidden.append(dense_init(k, fan_in, width, rwf=rwf, dtype=dtype))
            fan_in = width
        return {
            "embedding": embedding.init(k_emb, dtype),
            "encoder_u": dense_init(k_u, e, width, rwf=rwf, dtype=dtype),
            "encoder_v": dense_init(k_v, e, width, rwf=rwf, dtype=dtype),
            "hidden": hidden,
            "output": dense_init(k_out, width, output_dim, rwf=rwf, dtype=dtype),
        }

    def apply(params: Params, z: jax.Array) -> jax.Array:
        h = embedding.apply(params["embedding"], jnp.asarray(z, dtype))
        u = act(dense_apply(params["encoder_u"], h))
        v = act(dense_apply(params["encoder_v"], h))
        for layer in params["hidden"]:
            h = act(dense_apply(layer, h))
            h = h * u + (1.0 - h) * v
        return dense_apply(params["output"], h)

    return Model(init=init, apply=apply)
