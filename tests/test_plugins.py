"""A PDE from outside the package (docs/plugins.md, run as written there): through
``hydra.searchpath`` and through a ``pinnrun.configs`` entry point; the run folder is named after the
PDE that ran and the overrides given; a misspelt option lists the plug-in's options too."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

import numpy as np

from conftest import REPO, read_jsonl, run_cli

DOC = REPO / "docs" / "plugins.md"
# The doc's command, shortened to a few steps (the rest of it as written there).
SHORT = ["train.steps=30", "train.eval_every=30", "train.log_every=10", "train.figures=false", "pde.eval_resolution=[21,21]"]


def only_run_dir(root: Path) -> Path:
    (run_dir,) = [p.parent for p in root.rglob("summary.json")]
    return run_dir


def doc_files(folder: Path) -> None:
    """Write every code block of docs/plugins.md that starts with ``# file: <path>`` under ``folder``."""
    blocks = re.findall(r"```\w+\n# file: (\S+)\n(.*?)```", DOC.read_text(), flags=re.S)
    assert {path for path, _ in blocks} == {"my_pinns/poisson.py", "my_conf/pde/poisson.yaml"}
    for path, text in blocks:
        (folder / path).parent.mkdir(parents=True, exist_ok=True)
        (folder / path).write_text(text)
    (folder / "my_pinns" / "__init__.py").write_text("")


def doc_command(line_start: str) -> list[str]:
    """The arguments after ``pinnrun`` of the doc's command line that starts with ``line_start``, $PWD left in."""
    (line,) = [ln for ln in DOC.read_text().splitlines() if ln.startswith(line_start)]
    words = line.split()
    return words[words.index("pinnrun") + 1:]


def test_a_pde_from_a_search_path_folder_trains_evaluates_and_reports(tmp_path):
    doc_files(tmp_path)
    env = {"PYTHONPATH": str(tmp_path)}
    args = [a.replace("$PWD", str(tmp_path)) for a in doc_command("PYTHONPATH=. pinnrun hydra.searchpath")]
    assert args == [f"hydra.searchpath=[file://{tmp_path}/my_conf]", "pde=poisson", "optim=soap", "train=cpu_quick"]
    result = run_cli([*args, *SHORT], tmp_path, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    run_dir = only_run_dir(tmp_path / "outputs")
    assert re.fullmatch(r"\d\d-\d\d-\d\d_poisson_soap_cpu_quick_steps30_.*", run_dir.name), run_dir.name
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["pde"] == "poisson" and summary["optimizer"] == "soap"
    assert summary["reference"]["solver"] == "exact formula" and 0 < summary["final_rel_l2"]["u"] < 2
    assert summary["run"] == {"name": None, "tags": []}
    # a resume from that folder, whose name came from overrides with brackets and commas (sanitised:
    # Orbax cannot restore from such a path)
    result = run_cli([f"resume={run_dir}", "train.steps=40"], tmp_path, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "resuming from the checkpoint at step 30" in result.stdout
    assert json.loads((run_dir / "summary.json").read_text())["steps"] == 40
    from pinnrun.report import make_report

    make_report([tmp_path / "outputs"])
    table = (tmp_path / "outputs" / "report.md").read_text()
    assert "poisson" in table and "soap" in table
    # A misspelt option is refused with the options of the search path too; a parameter the class does
    # not take is refused by name; neither writes anything.
    searchpath = args[0]
    result = run_cli([searchpath, "pde=poison"], tmp_path, env=env)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert "unknown pde option 'poison'" in result.stderr and "poisson" in result.stderr and "kovasznay" in result.stderr
    result = run_cli([searchpath, "pde=poisson", "+pde.amplitdue=2"], tmp_path, env=env)
    assert result.returncode == 2 and "pde.amplitdue" in result.stderr and "amplitude" in result.stderr
    assert len(list((tmp_path / "outputs").rglob("summary.json"))) == 1


def test_an_installed_package_adds_its_configs_by_entry_point(tmp_path):
    """A distribution on sys.path (a dist-info folder, as pip leaves it) whose entry points name its
    config package (pinnrun.configs), an architecture (pinnrun.archs) and a weighting scheme
    (pinnrun.weightings), as docs/plugins.md writes them: pde=poisson works without any search path,
    with the package's network and weights."""
    site = tmp_path / "site"
    doc_files(site)
    for path, text in re.findall(r"```\w+\n# plugin-file: (\S+)\n(.*?)```", DOC.read_text(), flags=re.S):
        (site / path).parent.mkdir(parents=True, exist_ok=True)
        (site / path).write_text(text)
    conf = site / "my_pinns" / "conf"
    (conf / "__init__.py").write_text("")
    (site / "my_conf").rename(conf / "bundled")
    (conf / "bundled" / "pde").rename(conf / "pde")
    info = site / "my_pinns-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: my-pinns\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        "[pinnrun.configs]\nmy_pinns = my_pinns.conf\n\n"
        "[pinnrun.archs]\nresidual_mlp = my_pinns.extras:build_residual_mlp\n\n"
        "[pinnrun.weightings]\nequal_gradients = my_pinns.extras:equal_gradient_targets\n")
    env = {"PYTHONPATH": str(site)}
    result = run_cli(["pde=poisson", "optim=adam", "train=cpu_quick", "arch=residual_mlp", "weighting=equal_gradients",
                      "weighting.update_every=10", "weighting.momentum=0.0", "run.name=entry point run", "run.tags=[plugin]", *SHORT],
                     tmp_path, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    run_dir = only_run_dir(tmp_path / "outputs")
    assert re.fullmatch(r"\d\d-\d\d-\d\d_entry-point-run", run_dir.name), run_dir.name   # run.name names it
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["pde"] == "poisson" and summary["run"] == {"name": "entry point run", "tags": ["plugin"]}
    assert summary["arch"] == "residual_mlp"
    from pinnrun.report import make_report

    make_report([tmp_path / "outputs"])
    assert "poisson" in (tmp_path / "outputs" / "report.md").read_text()
    with np.load(run_dir / "params.npz") as params:
        assert "lift/kernel" in params.files or any(k.startswith("lift/") for k in params.files)
    # the package's weights, w_k = mean_j ||g_j|| / ||g_k|| with momentum 0: sum_k 1 / w_k = K (= 2 here;
    # the initial weights 10 and 1 give 1.1)
    record = read_jsonl(run_dir / "metrics.jsonl")[-1]
    assert 1 / record["weight/bc"] + 1 / record["weight/res"] == pytest.approx(2.0, rel=1e-4)
    # a name nobody declared is refused with the declared ones listed
    result = run_cli(["pde=poisson", "arch.name=resnet"], tmp_path, env=env)
    assert result.returncode == 2 and "arch.name must be one of mlp, modified_mlp, pirate, residual_mlp" in result.stderr


def test_folder_names_say_what_ran():
    """The resolver's name: the PDE class's own name (a _target_ override names the PDE that ran), the
    optimizer, then a short part per other override, with the characters Orbax refuses replaced."""
    from pinnrun.run_names import job_name, run_name

    assert run_name("kovasznay", "pinnrun.pdes.wave.Wave", "adam", ["pde._target_=pinnrun.pdes.wave.Wave"]) == "wave_adam"
    assert run_name("kovasznay", "no.such.Module", "soap", ["optim=soap", "train.seed=1", "pde.eval_resolution=[11,11]",
                                                             "hydra.run.dir=x", "train=cpu_quick"]) == \
        "kovasznay_soap_seed1_eval_resolution-11-11_cpu_quick"
    assert run_name("wave", None, "adam", [], given="my run/1") == "my-run-1"
    assert job_name(3, ["pde=burgers", "optim=adam", "arch.width=32"]) == "3_burgers_adam_width32"


@pytest.mark.parametrize("args, fragment", [
    (["run.tags=plugin"], "run.tags must be a list of non-empty strings"),
    (["run.name=''"], "run.name must be a non-empty string or null"),
])
def test_bad_run_name_or_tags_are_one_line(tmp_path, args, fragment):
    result = run_cli(args, tmp_path)
    assert result.returncode == 2 and fragment in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "outputs").exists()
