"""The report's look (fonts, legends, header map, PNG files) and `monosemantic report RUN_DIR...`."""
import re

import matplotlib
import pytest

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from monosemantic.cli import main  # noqa: E402
from monosemantic.report.html import MIN_FONT, Section, figure, header, style, table, write_report  # noqa: E402


def test_style_sets_readable_fonts_and_moves_legends_off_the_axes():
    fig, ax = plt.subplots(figsize=(4, 3))
    ax.plot([0, 1], [0, 1], label="a line")
    ax.set_title("a title much too long to fit over an axes four inches wide at eleven points, so it wraps",
                 fontsize=7)
    ax.tick_params(labelsize=6)
    ax.legend(fontsize=6, loc="center")
    style(fig)
    fig.canvas.draw()
    sizes = [t.get_fontsize() for t in fig.findobj(matplotlib.text.Text) if t.get_text()]
    assert min(sizes) >= MIN_FONT
    assert "\n" in ax.get_title()
    leg = ax.get_legend().get_window_extent()
    box = ax.get_window_extent()
    assert leg.x0 >= box.x1  # beside the data, not on it
    plt.close(fig)


def test_tables_get_human_headers():
    html = table([{"mcc_hungarian": 0.5, "code_rel_err": 0.1, "some_new_key": 1}])
    assert "Hungarian MCC" in html and "code error (relative)" in html and "some new key" in html
    assert "mcc_hungarian" not in html and header("fvu") == "FVU"


def test_write_report_also_writes_every_figure_as_png_and_svg(tmp_path):
    sec = Section("A section: with punctuation")
    for _ in range(2):
        fig, ax = plt.subplots()
        ax.plot([1, 2])
        sec.add(figure(fig))
    page = write_report(tmp_path / "r" / "report.html", "t", [sec])
    pngs = sorted((tmp_path / "r" / "figures").glob("*.png"))
    assert [p.name for p in pngs] == ["00-a-section-with-punctuation-1.png", "00-a-section-with-punctuation-2.png"]
    assert all(p.read_bytes().startswith(b"\x89PNG") for p in pngs)
    svgs = sorted((tmp_path / "r" / "figures").glob("*.svg"))
    assert [p.stem for p in svgs] == [p.stem for p in pngs]
    assert all(b"<svg" in p.read_bytes()[:1000] for p in svgs)
    assert page.read_text().count("<img") == 2


def test_log_axes_get_plain_labels_that_do_not_collide():
    fig, (a, b) = plt.subplots(2, 1, figsize=(8, 6))
    a.loglog([0.004, 0.06], [0.09, 0.8])
    b.semilogx([1e-6, 1e2], [0, 1])
    style(fig)
    fig.canvas.draw()
    labels = [t.get_text() for t in a.xaxis.get_ticklabels(which="both") if t.get_text()]
    assert "0.01" in labels and "0.005" in labels and not any("times" in t for t in labels)  # 1-2-5, no 10^x
    wide = [t.get_text() for t in b.xaxis.get_ticklabels(which="minor") if t.get_text()]
    assert wide == []  # eight decades in a few inches: the decades alone
    plt.close(fig)


def test_save_figure_writes_png_or_svg_by_suffix(tmp_path):
    from monosemantic.errors import InputError
    from monosemantic.report.html import save_figure

    for name in ("f.png", "f.svg"):
        fig, ax = plt.subplots()
        ax.plot([1, 2])
        save_figure(fig, tmp_path / name)
    assert (tmp_path / "f.png").read_bytes().startswith(b"\x89PNG") and b"<svg" in (tmp_path / "f.svg").read_bytes()
    with pytest.raises(InputError, match="png or .svg"):
        save_figure(plt.figure(), tmp_path / "f.pdf")


@pytest.mark.slow
def test_report_command_builds_a_page_from_toy_and_dictionary_runs(tmp_path, capsys):
    def run(*args):
        with pytest.raises(SystemExit) as e:
            main([str(a) for a in args])
        assert e.value.code == 0, capsys.readouterr().err

    run("toy", "train", "--n", 5, "--m", 2, "--sparsity", 0, 0.9, "--steps", 200, "--eval-batch", 512,
        "--no-progress", "--out", tmp_path / "toy")
    run("data", "synth", "--n-features", 32, "--d", 8, "--k", 2, "--samples", 3000, "--out", tmp_path / "d.npz")
    run("sae", "train", "--data", tmp_path / "d.npz", "--arch", "topk", "--k", 2, "--latents", 32,
        "--samples", 20000, "--no-progress", "--out", tmp_path / "sae")
    run("report", tmp_path / "toy", tmp_path / "sae", "--out", tmp_path / "rep")
    html = (tmp_path / "rep" / "report.html").read_text()
    assert "Toy run toy: relu-output, n=5, m=2" in html and "Dictionary run sae: topk, 32 atoms" in html
    assert "latent density" in html or "latent densities" in html
    assert "training curves" in html  # the SAE's history, from result.json
    n_img = html.count("<img")
    assert n_img >= 6 and len(list((tmp_path / "rep" / "figures").glob("*.png"))) == n_img
    assert len(list((tmp_path / "rep" / "figures").glob("*.svg"))) == n_img
    from monosemantic.report.pages import figures  # the same figures, for Python

    assert set(figures(tmp_path / "toy")) == {"geometry", "wtw", "norms", "loss"}
    figs = figures(tmp_path / "sae")
    assert set(figs) == {"training", "latent_density"} and len(figs["training"].axes) == 4
    assert not re.search(r"<th>[a-z]+_[a-z_]+</th>", html)  # no raw snake_case headers


def test_report_command_refuses_other_directories_in_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(["report", str(tmp_path), "--out", str(tmp_path / "rep")])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: not a run directory") and "\n" not in err


def test_report_command_refuses_an_empty_out_rather_than_write_into_the_working_directory(tmp_path, capsys,
                                                                                           monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as e:
        main(["report", str(tmp_path), "--out", ""])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: output path must name") and "\n" not in err
    assert list(tmp_path.iterdir()) == []


def test_the_strategic_picture_reads_every_road_from_the_summary():
    from monosemantic.report.sections.overview import picture

    summary = {
        "l1_sweep": {"lambda": [0.0, 0.1, 1.0], "loss": [0.04, 0.05, 0.1], "represented_features": [10, 8, 5],
                     "monosemantic_neurons": [0, 3, 3], "used_neurons": [5, 5, 3]},
        "moe_flop_matched": {"sparsity": [0.9, 0.99], "dense_loss": [0.16, 0.017], "moe_loss": [0.1, 0.008],
                             "dense_dims_per_feature": [0.39, 0.36], "moe_dims_per_feature": [0.58, 0.46]},
        "dictionary_recovery": {"ours TopK": {"mmcs": 0.99, "recovered": 0.98, "fvu": 0.09, "l0": 4.8}},
        "unfolding": {"omp": {"support_f1": 1.0, "samples_per_s": 5000.0}},
    }
    html = picture(summary)
    # L1: lambda 1.0 has every used neuron monosemantic (3 of 3), the best share, so its loss is quoted
    assert "loss 0.1 at lambda 1 against 0.04 without penalty" in html and "3 of 3 used neurons" in html
    assert "loss 0.008 against 0.017 dense, at S = 0.99" in html
    assert "98.0%" in html and "support F1 1.0000" in html
    assert picture({}) == ""
