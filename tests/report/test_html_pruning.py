"""report.html's pruning parts: a conversion's pruning steps, and `qconvert prune-sweep`'s curves."""

from __future__ import annotations

import re

from qconvert.prune.sweep import SweepPoint, SweepResult
from qconvert.report.html import report_html
from qconvert.report.pruning import PruneRun, PruneStep
from tests.report.sample_results import full_result
from tests.report.test_html_report import SECTIONS, check_in_chromium, needs_browser


def pruned_result():
    result = full_result()
    result.pruning = PruneRun("global", 0.8, 1_000_000, 1_000_000, steps=[
        PruneStep(k, t, t, 1_000_000, round(1_000_000 * (1 - t)), 2.0) for k, t in ((1, 0.4), (2, 0.7), (3, 0.8))])
    return result


def sweep_result() -> SweepResult:
    result = SweepResult("models/vgg.pt2", "top1", 1_000_000, {"top1": 97.5}, {"epochs": 2, "lr": 1e-4})
    for method, slope in (("layer", 30.0), ("global", 20.0), ("channel", 45.0)):
        for sparsity in (0.0, 0.2, 0.4, 0.6, 0.8):
            drop = slope * sparsity**2
            result.points.append(SweepPoint(method, sparsity, sparsity, 1_000_000, round(1e6 * (1 - sparsity)), None,
                                            {"top1": 97.5 - drop}, {"top1": 97.5 - drop / 3}))
    return result


ALL_SECTIONS = SECTIONS[:-2] + ["pruning", "training", "bundles"]


def test_the_pruning_table_says_how_many_weights_ranked_as_trained():
    from qconvert.report.prune_specs import pruning_spec

    run = pruned_result().pruning
    run.steps[-1].layers = [{"name": "w1", "ranked_as_trained": True}, {"name": "w2", "ranked_as_trained": False}]
    assert pruning_spec(run).caption is None  # the default, folded: nothing to say
    run.magnitudes = "trained"
    assert "as trained (folded BatchNorm divided out) for 1 of 2 weights" in pruning_spec(run).caption


def test_every_section_within_2_mb():
    page = report_html(pruned_result())
    assert re.findall(r'<section id="([^"]+)"', page) == ALL_SECTIONS
    assert len(page.encode()) <= 2_000_000
    assert "<td class=\"right\">0.700</td>" in page  # the second step's sparsity, in the pruning table


def test_sweep_page_has_each_curve():
    page = report_html(sweep_result())
    assert page.count("<polyline") == 6  # 3 methods, each with and without fine-tuning
    assert ">layer + fine-tune<" in page and "unpruned" in page


@needs_browser
def test_pruning_renders_in_chromium(tmp_path):
    check_in_chromium(pruned_result(), ALL_SECTIONS, tmp_path / "conversion.png")
    check_in_chromium(sweep_result(), ["prune-sweep"], tmp_path / "prune-sweep.png")
