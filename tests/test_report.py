"""pinnrun-report: the table's numbers against hand-written and real summaries, the CSV, the figures, errors."""

from __future__ import annotations

import csv
import json
import math
import statistics
from pathlib import Path

import pytest

from pinnrun.report import main, make_report
from conftest import QUICK

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

# A fake sweep: 2 PDEs x 2 optimizers x 2 seeds with known final errors, speeds and wall times.
FIELDS = {"kovasznay": ("u", "v", "p"), "wave": ("u",)}
FAKE = {
    # (pde, optimizer): per seed: (final rel_l2 per field, steps/s, wall seconds)
    ("kovasznay", "adam"): [((0.1, 0.2, 0.3), 100.0, 10.0), ((0.3, 0.4, 0.5), 120.0, 12.0)],
    ("kovasznay", "soap"): [((0.01, 0.02, 0.03), 50.0, 20.0), ((0.02, 0.04, 0.06), 60.0, 25.0)],
    ("wave", "adam"): [((0.5,), 200.0, 5.0), ((0.7,), 180.0, 6.0)],
    ("wave", "soap"): [((0.05,), 90.0, 8.0), ((0.15,), 70.0, 9.5)],
}


def write_run(run_dir: Path, pde: str, optimizer: str, seed: int, errors, sps, wall, steps=(10, 20), extra=()):
    """A run folder as pinnrun writes it: summary.json, metrics.jsonl, .hydra/overrides.yaml."""
    run_dir.mkdir(parents=True)
    final = dict(zip(FIELDS[pde], errors))
    summary = {
        "steps": steps[-1],
        "steps_per_second": sps,
        "wall_seconds": wall,
        "final_rel_l2": final,
        "best_rel_l2": final,
        "seed": seed,
        "pde": pde,
        "optimizer": optimizer,
    }
    (run_dir / "summary.json").write_text(json.dumps(summary))
    records = []
    for i, step in enumerate(steps):
        scale = 2.0 ** (len(steps) - 1 - i)  # the error halves each logged step, ending at the final one
        record = {"step": step, "loss": 1.0, "align/intra": 0.1 * i + seed, "align/intra_precond": 0.2 * i - seed}
        record.update({f"rel_l2/{f}": e if isinstance(e, str) else e * scale for f, e in final.items()})
        records.append(record)
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    (run_dir / ".hydra").mkdir()
    overrides = [f"pde={pde}", f"optim={optimizer}", f"train.seed={seed}", *extra]
    (run_dir / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
    return summary


def fake_sweep(root: Path) -> Path:
    sweep = root / "multirun" / "2026-01-01" / "00-00-00"
    num = 0
    for (pde, optimizer), seeds in FAKE.items():
        for seed, (errors, sps, wall) in enumerate(seeds):
            write_run(sweep / f"{num}_pde={pde},optim={optimizer},train.seed={seed}", pde, optimizer, seed, errors, sps, wall)
            num += 1
    return sweep


def read_csv(path: Path) -> dict[tuple[str, str], dict[str, str]]:
    with open(path, newline="") as f:
        return {(row["pde"], row["optimizer"]): row for row in csv.DictReader(f)}


def expected(values):
    return statistics.mean(values), statistics.stdev(values)


def test_fake_sweep_numbers(tmp_path, capsys):
    sweep = fake_sweep(tmp_path)
    assert main([str(sweep)]) == 0
    printed = capsys.readouterr().out.split()
    for name in ("report.md", "report.csv", "error_vs_step.png", "alignment_vs_step.png"):
        assert str(sweep / name) in printed
        assert (sweep / name).stat().st_size > 0
    for name in ("error_vs_step.png", "alignment_vs_step.png"):
        assert (sweep / name).read_bytes()[:8] == PNG_MAGIC

    rows = read_csv(sweep / "report.csv")
    assert set(rows) == set(FAKE)
    markdown = (sweep / "report.md").read_text()
    for (pde, optimizer), seeds in FAKE.items():
        row = rows[(pde, optimizer)]
        assert int(row["n"]) == 2
        mean, std = expected([statistics.mean(errors) for errors, _, _ in seeds])
        assert float(row["rel_l2_mean"]) == pytest.approx(mean, rel=1e-12)
        assert float(row["rel_l2_std"]) == pytest.approx(std, rel=1e-12)
        for i, field in enumerate(FIELDS[pde]):
            mean_f, std_f = expected([errors[i] for errors, _, _ in seeds])
            assert float(row[f"rel_l2/{field}_mean"]) == pytest.approx(mean_f, rel=1e-12)
            assert float(row[f"rel_l2/{field}_std"]) == pytest.approx(std_f, rel=1e-12)
        for field in {"u", "v", "p"} - set(FIELDS[pde]):  # a field the PDE lacks: empty cells
            assert row[f"rel_l2/{field}_mean"] == "" and row[f"rel_l2/{field}_std"] == ""
        for col, key in ((1, "steps_per_second"), (2, "wall_seconds")):
            mean_s, std_s = expected([seed[col] for seed in seeds])
            assert float(row[f"{key}_mean"]) == pytest.approx(mean_s, rel=1e-12)
            assert float(row[f"{key}_std"]) == pytest.approx(std_s, rel=1e-12)
        # The markdown cell shows the same numbers, rounded.
        assert f"{mean:.3e} ± {std:.3e} (n=2)" in markdown
    # Rows PDE, columns optimizer.
    assert "| PDE | adam | soap |" in markdown
    assert "| kovasznay | 3.000e-01 ± 1.414e-01 (n=2) | 3.000e-02 ± 1.414e-02 (n=2) |" in markdown
    assert "| wave | 6.000e-01 ± 1.414e-01 (n=2) | 1.000e-01 ± 7.071e-02 (n=2) |" in markdown
    assert "| kovasznay | 110.0 ± 14.1 (n=2) | 55.0 ± 7.1 (n=2) |" in markdown  # steps/s


def test_out_dir_several_sweeps_and_single_runs(tmp_path):
    """--out elsewhere; two folders are pooled; a group of one run has no std."""
    first = tmp_path / "a"
    second = tmp_path / "b"
    write_run(first / "0", "wave", "adam", 0, (0.5,), 200.0, 5.0)
    write_run(second / "0", "wave", "adam", 1, (0.7,), 180.0, 6.0)
    write_run(second / "1", "wave", "soap", 0, (0.05,), 90.0, 8.0)
    out = tmp_path / "report"
    assert main([str(first), str(second), "--out", str(out)]) == 0
    assert not (first / "report.md").exists()
    rows = read_csv(out / "report.csv")
    assert float(rows[("wave", "adam")]["rel_l2_mean"]) == pytest.approx(0.6)
    assert int(rows[("wave", "soap")]["n"]) == 1 and math.isnan(float(rows[("wave", "soap")]["rel_l2_std"]))
    assert "5.000e-02 (n=1)" in (out / "report.md").read_text()


def test_error_curve_mean_and_band(tmp_path):
    """The figure's data: mean over seeds of the field-averaged rel_l2 at each step, min/max band;
    a step logged twice (a resumed run) counts once, with its last value."""
    sweep = fake_sweep(tmp_path)
    run = next(sweep.glob("*optim=soap,train.seed=1"))
    with open(run / "metrics.jsonl", "a") as f:  # a resumed kovasznay/soap run re-logs step 20
        f.write(json.dumps({"step": 20, "rel_l2/u": 0.02, "rel_l2/v": 0.04, "rel_l2/p": 0.06}) + "\n")
    from pinnrun.report import band, find_runs, group_runs

    groups = group_runs(find_runs([sweep], warn=lambda m: None))
    runs = groups[("kovasznay", "soap")]
    steps, mean, lo, hi = band([r.curve(None) for r in runs])
    assert list(steps) == [10, 20]
    finals = [statistics.mean(errors) for errors, _, _ in FAKE[("kovasznay", "soap")]]
    assert mean[-1] == pytest.approx(statistics.mean(finals))
    assert (lo[-1], hi[-1]) == pytest.approx((min(finals), max(finals)))
    assert mean[0] == pytest.approx(2 * statistics.mean(finals))


def test_a_sweep_over_a_setting_and_the_optimizer_gives_a_cell_each(tmp_path):
    """arch.width=32,64 x optim=adam,soap (two seeds each): four cells, labelled by optimizer and width;
    --by names the keys instead (none: pooled)."""
    sweep = tmp_path / "sweep"
    job = 0
    for width in (32, 64):
        for optimizer in ("adam", "soap"):
            for seed in (0, 1):
                error = (0.2 if optimizer == "adam" else 0.02) * (32 / width) * (1 + 0.1 * seed)
                write_run(sweep / str(job), "kovasznay", optimizer, seed, (error,), 100.0, 5.0, extra=[f"arch.width={width}"])
                job += 1
    make_report([sweep], warn=print)
    with (sweep / "report.csv").open() as f:
        rows = list(csv.DictReader(f))
    labels = {row["optimizer"]: (int(row["n"]), float(row["rel_l2_mean"])) for row in rows}
    assert set(labels) == {"adam, arch.width=32", "adam, arch.width=64", "soap, arch.width=32", "soap, arch.width=64"}
    assert labels["soap, arch.width=64"][0] == 2 and labels["soap, arch.width=64"][1] == pytest.approx(0.01 * 1.05)
    header = next(ln for ln in (sweep / "report.md").read_text().splitlines() if ln.startswith("| PDE |"))
    assert header == "| PDE | adam, arch.width=32 | adam, arch.width=64 | soap, arch.width=32 | soap, arch.width=64 |"
    assert main([str(sweep), "--by"]) == 0
    with (sweep / "report.csv").open() as f:
        assert sorted(row["optimizer"] for row in csv.DictReader(f)) == ["adam", "soap"]


def test_mixed_settings_and_no_alignment(tmp_path, capsys):
    """With --by naming no key, runs differing in more than the seed are pooled with a warning; no
    align/* metrics: no figure."""
    sweep = tmp_path / "sweep"
    for i, lr in enumerate((1e-3, 1e-2)):
        write_run(sweep / str(i), "wave", "soap", 0, (0.1 * (i + 1),), 90.0, 8.0, extra=[f"optim.lr={lr}"])
        lines = [json.loads(x) for x in (sweep / str(i) / "metrics.jsonl").read_text().splitlines()]
        (sweep / str(i) / "metrics.jsonl").write_text(
            "".join(json.dumps({k: v for k, v in r.items() if not k.startswith("align/")}) + "\n" for r in lines)
        )
    written = make_report([sweep], warn=print, by=[])
    out = capsys.readouterr().out
    assert "wave/soap pools runs with different settings: optim.lr=0.001, optim.lr=0.01" in out
    assert "alignment_vs_step.png not written" in out
    assert "alignment_vs_step.png" not in written and not (sweep / "alignment_vs_step.png").exists()
    assert "pools runs with different settings" in (sweep / "report.md").read_text()
    assert (sweep / "error_vs_step.png").exists()


def test_non_finite_values(tmp_path):
    """pinnrun writes NaN/inf as strings; a diverged run makes its group's mean nan, shown as n/a."""
    sweep = tmp_path / "sweep"
    write_run(sweep / "0", "wave", "adam", 0, ("nan",), 200.0, 5.0)
    write_run(sweep / "1", "wave", "adam", 1, (0.5,), 200.0, 5.0)
    assert main([str(sweep)]) == 0
    assert math.isnan(float(read_csv(sweep / "report.csv")[("wave", "adam")]["rel_l2_mean"]))
    assert "| wave | n/a ± n/a (n=2) |" in (sweep / "report.md").read_text()


def test_clear_errors(tmp_path, capsys):
    empty = tmp_path / "empty"
    (empty / "0_unfinished").mkdir(parents=True)
    (empty / "0_unfinished" / "metrics.jsonl").write_text("{}\n")
    assert main([str(empty)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"pinnrun-report: {empty}: no runs found (no summary.json in it or below; unfinished runs write none)"]

    assert main([str(tmp_path / "missing")]) == 2
    assert capsys.readouterr().err.strip() == f"pinnrun-report: {tmp_path / 'missing'}: no such folder"

    # One good folder and one empty one: still an error naming the empty one.
    good = fake_sweep(tmp_path / "good")
    assert main([str(good), str(empty)]) == 2
    assert str(empty) in capsys.readouterr().err

    # A corrupt summary is skipped with a warning; the rest still make a report.
    bad = next(good.glob("0_*")) / "summary.json"
    bad.write_text("{trunc")
    assert main([str(good)]) == 0
    assert f"skipping {bad}" in capsys.readouterr().err
    assert int(read_csv(good / "report.csv")[("kovasznay", "adam")]["n"]) == 1


# Slow (20 s): four real jobs; the fake-sweep tests above check the report's numbers in the default suite.
@pytest.mark.slow
def test_real_sweep_joblib(cli):
    """`pinnrun -m hydra/launcher=pinnrun_joblib optim=adam,soap train.seed=0,1` completes 4 jobs and the
    report's table matches the runs' summaries."""
    pytest.importorskip("hydra_plugins.hydra_joblib_launcher", reason="needs hydra-joblib-launcher (pinnrun[sweep])")
    result = cli(
        ["-m", "hydra/launcher=pinnrun_joblib", "hydra.sweep.dir=sweep", "optim=adam,soap", "train.seed=0,1",
         *QUICK, "train.alignment_every=10", "pde.eval_resolution=[11,11]"]
    )
    assert result.returncode == 0, result.stderr[-3000:]
    sweep = cli.cwd / "sweep"
    summaries = [json.loads(p.read_text()) for p in sorted(sweep.glob("*/summary.json"))]
    assert len(summaries) == 4
    assert sorted((s["optimizer"], s["seed"]) for s in summaries) == [("adam", 0), ("adam", 1), ("soap", 0), ("soap", 1)]

    assert main([str(sweep)]) == 0
    rows = read_csv(sweep / "report.csv")
    assert set(rows) == {("kovasznay", "adam"), ("kovasznay", "soap")}
    markdown = (sweep / "report.md").read_text()
    for optimizer in ("adam", "soap"):
        group = [s for s in summaries if s["optimizer"] == optimizer]
        row = rows[("kovasznay", optimizer)]
        assert int(row["n"]) == 2
        mean, std = expected([statistics.mean(s["final_rel_l2"].values()) for s in group])
        assert float(row["rel_l2_mean"]) == pytest.approx(mean, rel=1e-12)
        assert float(row["rel_l2_std"]) == pytest.approx(std, rel=1e-12)
        for field in ("u", "v", "p"):
            assert float(row[f"rel_l2/{field}_mean"]) == pytest.approx(
                statistics.mean(s["final_rel_l2"][field] for s in group), rel=1e-12
            )
        for key in ("steps_per_second", "wall_seconds"):
            assert float(row[f"{key}_mean"]) == pytest.approx(statistics.mean(s[key] for s in group), rel=1e-12)
            assert float(row[f"{key}_std"]) == pytest.approx(statistics.stdev(s[key] for s in group), rel=1e-12)
        assert f"{mean:.3e} ± {std:.3e} (n=2)" in markdown
    for name in ("error_vs_step.png", "alignment_vs_step.png"):
        assert (sweep / name).read_bytes()[:8] == PNG_MAGIC


def test_runs_over_different_domains_get_rows_of_their_own(tmp_path, monkeypatch):
    # KS at its quick horizon and at the recipe's: same pde and optimizer, different `domain`.
    monkeypatch.setitem(FIELDS, "ks", ("u",))
    sweep = tmp_path / "sweep"
    for seed, t_max, error in ((0, 0.3, 0.05), (1, 0.3, 0.07), (0, 1.0, 1.0)):
        summary = write_run(sweep / f"ks_{t_max}_{seed}", "ks", "soap", seed, (error,), 30.0, 250.0)
        summary["domain"] = {"t": [0.0, t_max], "x": [0.0, 6.283185307179586]}
        (sweep / f"ks_{t_max}_{seed}" / "summary.json").write_text(json.dumps(summary))
    write_run(sweep / "wave_0", "wave", "soap", 0, (0.02,), 30.0, 100.0)  # one domain: label unchanged
    write_run(sweep / "ks_old", "ks", "soap", 0, (0.9,), 30.0, 100.0)  # written before summaries had one
    make_report([sweep])
    rows = read_csv(sweep / "report.csv")
    assert set(rows) == {
        ("ks (t in [0, 0.3])", "soap"),
        ("ks (t in [0, 1])", "soap"),
        ("ks (domain not recorded)", "soap"),
        ("wave", "soap"),
    }
    assert float(rows[("ks (t in [0, 0.3])", "soap")]["rel_l2_mean"]) == pytest.approx(0.06)
    assert rows[("ks (t in [0, 0.3])", "soap")]["n"] == "2" and rows[("ks (t in [0, 1])", "soap")]["n"] == "1"


def test_a_curriculum_gets_its_errors_per_stage(tmp_path):
    """Runs with stages: a table of each stage's final error per field, mean ± std over seeds."""
    sweep = tmp_path / "sweep"
    per_seed = {"adam": [(0.4, 0.6), (0.6, 0.8)], "soap": [(0.04, 0.1), (0.06, 0.3)]}
    for optimizer, seeds in per_seed.items():
        for seed, (first, second) in enumerate(seeds):
            run = sweep / f"{optimizer}_{seed}"
            summary = write_run(run, "wave", optimizer, seed, (second,), 10.0, 1.0)
            summary["stages"] = [{"index": 0, "name": "re100", "final_rel_l2": {"u": first}},
                                 {"index": 1, "name": "re400", "final_rel_l2": {"u": second}}]
            (run / "summary.json").write_text(json.dumps(summary))
    single = write_run(sweep / "single", "kovasznay", "adam", 0, (0.1, 0.2, 0.3), 10.0, 1.0)
    single["stages"] = [{"index": 0, "name": "adam", "final_rel_l2": {"u": 0.1, "v": 0.2, "p": 0.3}}]
    (sweep / "single" / "summary.json").write_text(json.dumps(single))
    make_report([sweep], warn=lambda *_: None)
    markdown = (sweep / "report.md").read_text()
    assert "## Final relative L2 per stage" in markdown
    assert "| wave | re100 | u | 5.000e-01 ± 1.414e-01 (n=2) | 5.000e-02 ± 1.414e-02 (n=2) |" in markdown
    assert "| wave | re400 | u | 7.000e-01 ± 1.414e-01 (n=2) | 2.000e-01 ± 1.414e-01 (n=2) |" in markdown
    assert "| kovasznay |" not in markdown.split("## Final relative L2 per stage")[1]   # one stage: no rows


def test_pinnrun_plot_draws_several_runs_together(tmp_path):
    from matplotlib import image

    from pinnrun.plot import main as plot_main

    sweep = tmp_path / "sweep"
    for i, optimizer in enumerate(("adam", "soap")):
        write_run(sweep / f"{i}_kovasznay_{optimizer}", "kovasznay", optimizer, 0, (0.2 / (i + 1),), 100.0, 5.0)
    out = tmp_path / "both.png"
    assert plot_main([str(sweep / "0_kovasznay_adam"), str(sweep / "1_kovasznay_soap"), "--compare", str(out)]) == 0
    assert (sweep / "0_kovasznay_adam" / "training.png").is_file()
    pixels = image.imread(out)
    assert pixels.shape[0] > 300 and pixels.std() > 0.05   # drawn, not blank
    assert plot_main([str(tmp_path / "missing")]) == 2
