"""Config composition (Hydra compose API) and validation messages."""

from __future__ import annotations

import pytest
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

from pinnrun.cli import check_group_choices, config_groups
from pinnrun.config import ConfigError, validate


def composed(*overrides):
    with initialize_config_module(config_module="pinnrun.conf", version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides))


def test_default_composition_is_kovasznay_adam():
    cfg = composed()
    assert cfg.pde._target_.endswith("Kovasznay")
    assert cfg.optim.name == "adam"
    assert cfg.arch.width == 64 and cfg.arch.depth == 4 and cfg.arch.activation == "tanh"
    assert cfg.train.batch_size == 1024
    for group in ("pde", "arch", "optim", "weighting", "train", "logger", "checkpoint"):
        assert group in cfg
    validate(cfg)


def test_pde_recipe_sets_other_groups_and_user_overrides_win():
    cfg = composed("pde=wave")
    assert cfg.pde._target_.endswith("Wave")
    assert cfg.arch.fourier.scale == 10.0
    cfg = composed("pde=wave", "arch.fourier.scale=3.0")
    assert cfg.arch.fourier.scale == 3.0


def test_groups_list_their_options():
    groups = config_groups()
    assert {"pde", "arch", "optim", "weighting", "train", "logger", "checkpoint"} <= set(groups)
    assert {"kovasznay", "wave"} <= set(groups["pde"])
    assert "adam" in groups["optim"]


@pytest.mark.parametrize(
    "override, key, allowed",
    [
        ("train.steps=-5", "train.steps", ">= 1"),
        ("train.steps=abc", "train.steps", "integer"),
        ("train.batch_size=0", "train.batch_size", ">= 1"),
        ("arch.activation=nope", "arch.activation", "tanh, sin, swish, gelu"),
        ("arch.width=1.5", "arch.width", "integer"),
        ("train.precision=float16", "train.precision", "float32, float64"),
        ("optim.lr=-1", "optim.lr", "> 0"),
        ("+optim.momentum=0.9", "optim.momentum", "b1, b2, eps"),
        ("weighting.name=magic", "weighting.name", "fixed, grad_norm, ntk"),
        ("train.progress=loud", "train.progress", "auto, bar, lines, none"),
    ],
)
def test_validation_names_key_and_allowed_values(override, key, allowed):
    cfg = composed(override)
    with pytest.raises(ConfigError) as error:
        validate(cfg)
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith(key)
    assert allowed in message


def test_unknown_group_option_lists_available_options():
    message = check_group_choices(["pde=nope"])
    assert message is not None and "\n" not in message
    assert "pde" in message and "kovasznay" in message and "wave" in message
    assert check_group_choices(["pde=kovasznay,wave", "optim=adam", "train.steps=3"]) is None
    assert "nope" in check_group_choices(["pde=kovasznay,nope"])


def test_validate_returns_plain_resolved_dict():
    cfg = validate(composed("train.seed=3"))
    assert isinstance(cfg, dict) and cfg["train"]["seed"] == 3
    assert not OmegaConf.is_config(cfg["train"])
