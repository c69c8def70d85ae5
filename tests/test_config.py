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


QUICK = {
    # name: (steps per window, windows, fourier scale or None)
    "kovasznay": (2000, 1, None),
    "wave": (4000, 1, 2.0),
    "burgers": (5000, 1, 1.0),
    "allen_cahn": (4000, 1, 2.0),
    "kdv": (1500, 4, 1.0),
    "ks": (2500, 3, 1.0),
}


@pytest.mark.parametrize("name", sorted(QUICK))
def test_cpu_quick_reads_the_pdes_quick_budget(name):
    recipe = validate(composed(f"pde={name}"))
    quick = validate(composed(f"pde={name}", "train=cpu_quick"))
    cfg = composed(f"pde={name}", "train=cpu_quick")
    # The train keys come from the PDE's quick budget, the network shrinks to the quick size and
    # everything else (optimizer but its schedule, weighting kind, loss weights) stays the recipe's.
    assert quick["train"]["steps"] == cfg.quick.steps and quick["train"]["batch_size"] == cfg.quick.batch_size
    assert quick["train"]["time_windows"] == cfg.quick.time_windows
    assert (quick["arch"]["width"], quick["arch"]["depth"]) == (cfg.quick.width, cfg.quick.depth)
    def unscheduled(optim):
        return {k: v for k, v in optim.items() if k not in ("warmup_steps", "decay_steps")}

    def whole_horizon(pde):
        return {k: v for k, v in pde.items() if k not in ("t_max", "eval_resolution")}

    assert unscheduled(quick["optim"]) == unscheduled(recipe["optim"])
    assert whole_horizon(quick["pde"]) == whole_horizon(recipe["pde"])
    assert quick["weighting"]["name"] == recipe["weighting"]["name"]
    assert recipe["train"]["steps"] == cfg.recipe.steps
    steps, windows, scale = QUICK[name]
    assert (quick["train"]["steps"], quick["train"]["time_windows"]) == (steps, windows)
    assert (quick["arch"]["fourier"] or {}).get("scale") == scale


def test_only_kuramoto_sivashinskys_quick_budget_shortens_the_horizon():
    # KS at the quick budget learns the recipe's first three windows, t in [0, 0.3], evaluated on the
    # recipe's grid restricted to them (time spacing 1/250); every other PDE keeps its horizon.
    def horizon(*overrides):
        pde = validate(composed(*overrides))["pde"]
        return pde.get("t_max"), pde.get("eval_resolution")

    for name in set(QUICK) - {"ks"}:
        assert horizon(f"pde={name}", "train=cpu_quick") == horizon(f"pde={name}"), name
    recipe = validate(composed("pde=ks"))["pde"]
    quick = validate(composed("pde=ks", "train=cpu_quick"))["pde"]
    assert (recipe["t_max"], recipe["eval_resolution"]) == (1.0, [251, 512])
    assert (quick["t_max"], quick["eval_resolution"]) == (0.3, [76, 512])
    window = quick["t_max"] / validate(composed("pde=ks", "train=cpu_quick"))["train"]["time_windows"]
    assert window == pytest.approx(recipe["t_max"] / validate(composed("pde=ks"))["train"]["time_windows"])
    # The whole horizon stays a few overrides away.
    full = validate(composed("pde=ks", "train=cpu_quick", "quick.t_max=1.0", "quick.eval_resolution=[251,512]"))
    assert full["pde"]["t_max"] == 1.0 and full["pde"]["eval_resolution"] == [251, 512]


def test_a_pde_may_give_its_budgets_own_keys():
    # wave: Fourier scale 10 and NTK weights refreshed every 1000 steps in the paper's recipe,
    # scale 2 and every 250 steps at the quick budget; a user's value still wins over both.
    recipe = validate(composed("pde=wave"))
    quick = validate(composed("pde=wave", "train=cpu_quick"))
    assert recipe["arch"]["fourier"]["scale"] == 10.0 and recipe["weighting"]["update_every"] == 1000
    assert quick["arch"]["fourier"]["scale"] == 2.0 and quick["weighting"]["update_every"] == 250
    mine = validate(composed("pde=wave", "train=cpu_quick", "arch.fourier.scale=5", "weighting.update_every=10"))
    assert mine["arch"]["fourier"]["scale"] == 5 and mine["weighting"]["update_every"] == 10


def test_a_pdes_budgets_may_set_the_learning_rate_schedule():
    def schedule(*overrides):
        optim = validate(composed(*overrides))["optim"]
        first = optim["phases"][0] if "phases" in optim else optim
        return first.get("warmup_steps"), first.get("decay_steps")

    assert schedule() == (200, 2000)  # the optimizers' own defaults
    assert schedule("pde=burgers", "optim=soap") == (200, 1000)  # the paper's Burgers recipe
    assert schedule("pde=burgers", "optim=soap", "train=cpu_quick") == (200, 500)
    assert schedule("pde=allen_cahn", "optim=adam") == (5000, 5000)
    assert schedule("pde=allen_cahn", "optim=adam", "train=cpu_quick") == (200, 2000)
    assert schedule("pde=burgers", "optim=adam_lbfgs", "train=cpu_quick") == (200, 500)
    assert schedule("pde=burgers", "optim=soap", "optim.decay_steps=7") == (200, 7)
    # Optimizers without a schedule are untouched by the budget's keys.
    assert schedule("pde=burgers", "optim=lbfgs") == (None, None)


@pytest.mark.parametrize(
    "overrides, needle",
    [
        (["arch.input_scale={t: 2.0}"], "arch.input_scale.t: not an input of kovasznay; inputs: x, y"),
        (["pde=ks", "train=cpu_quick", "arch.input_scale={x: 2.0}"], "arch.input_scale.x: x is periodic"),
        (["pde=gray_scott", "train=cpu_quick", "arch.input_scale={t: -1.0}"], "arch.input_scale.t"),
        (["arch.input_scale=3"], "arch.input_scale: must be null or a mapping"),
    ],
)
def test_input_scale_is_checked_against_the_pdes_inputs_before_compiling(overrides, needle):
    from pinnrun.build import build

    cfg = composed(*overrides)
    with pytest.raises(ConfigError) as error:
        build(validate(cfg))
    assert needle in str(error.value) and "\n" not in str(error.value)


@pytest.mark.parametrize(
    "overrides, needle",
    [
        (["arch.output_scale={T: 2.0}"], "arch.output_scale.T: not a field of kovasznay; fields: u, v, p"),
        (["arch.output_scale={u: 0.0}"], "arch.output_scale.u"),
        (["arch.output_scale=3"], "arch.output_scale: must be null or a mapping"),
        (["arch.background=true"], "arch.background: kovasznay states no background state to learn the departure from; use false"),
        (["arch.background=1"], "arch.background must be true or false"),
    ],
)
def test_output_scale_is_checked_against_the_pdes_fields_before_compiling(overrides, needle):
    from pinnrun.build import build

    cfg = composed(*overrides)
    with pytest.raises(ConfigError) as error:
        build(validate(cfg))
    assert needle in str(error.value) and "\n" not in str(error.value)
