"""matdisco.metrics: Matbench-Discovery stability classification and regression metrics."""

import numpy as np
import pytest

from matdisco.metrics import calibration_table, mae, r2, rmse, spearman, stability_classification


def test_perfect_and_inverted_classifiers():
    rng = np.random.default_rng(0)
    t = rng.normal(0.05, 0.1, 500)
    perfect = stability_classification(t, t)
    assert perfect["F1"] == 1 and perfect["accuracy"] == 1
    assert perfect["DAF"] == pytest.approx(1 / perfect["prevalence"])  # the maximum DAF
    inverted = stability_classification(t, -t + 0.1)
    assert inverted["TP"] == 0 and inverted["precision"] == 0 and np.isnan(inverted["F1"])  # never right: F1 undefined


def test_missing_predictions_count_as_unstable():
    m = stability_classification([-0.1, -0.1, 0.2], [np.nan, np.nan, np.nan])
    assert (m["TP"], m["FN"], m["FP"], m["TN"]) == (0, 2, 0, 1)
    assert np.isnan(m["F1"])  # Matbench Discovery: precision + recall = 0 -> F1 NaN, not 0
    assert np.isnan(m["MAE"]) and np.isnan(m["R2"])
    m = stability_classification([0.0], [0.0])  # E_hull <= 0 is stable
    assert m["TP"] == 1
    with pytest.raises(ValueError):
        stability_classification([np.nan], [0.0])


def test_regression_metrics_and_spearman():
    t = np.array([0.0, 1.0, 2.0, 3.0])
    p = t + np.array([0.1, -0.1, 0.1, -0.1])
    assert mae(t, p) == pytest.approx(0.1) and rmse(t, p) == pytest.approx(0.1)
    assert r2(t, t.mean() + 0 * t) == pytest.approx(0.0)
    assert spearman([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    cal = calibration_table(np.arange(100) / 100, np.arange(100) / 100, n_bins=5)
    assert len(cal) == 5 and cal.abs_error.is_monotonic_increasing


def test_regression_metrics_of_the_classification_are_on_e_hull():
    "Matbench Discovery's R² is on E_hull: a model exact up to a per-system shift has R² < 1 on E_hull."
    t = np.array([-0.2, 0.0, 0.1, 0.3, 0.5])
    p = t + 0.05
    m = stability_classification(t, p)
    assert m["MAE"] == pytest.approx(0.05) and m["RMSE"] == pytest.approx(0.05)
    assert m["R2"] == pytest.approx(r2(t, p)) and m["R2"] < 1
    assert m["DAF_max"] == pytest.approx(1 / m["prevalence"]) and m["DAF"] <= m["DAF_max"]


def test_sanity_checks_raise_not_assert():
    "They are ValueErrors (Matbench Discovery), so `python -O` cannot remove them; a shape mismatch is one too."
    with pytest.raises(ValueError, match="shape"):
        stability_classification([0.0, 1.0], [0.0])


def test_precision_on_verifiable_hits_ignores_holes_and_new_and_carries_its_interval():
    from matdisco.metrics import verified_precision

    verdicts = (
        ["verified_rediscovery"] * 8 + ["verified_false_positive"] * 2 + ["reference_hole", "new", "known_unverified"]
    )
    m = verified_precision(verdicts)
    assert m["precision_verified"] == 0.8 and m["n_verifiable"] == 10 and m["n_hits"] == 13
    assert (m["precision_verified_lo"], m["precision_verified_hi"]) == pytest.approx(
        (0.4902, 0.9433), abs=1e-4
    )  # Wilson, 8/10
    assert m["n_reference_hole"] == m["n_new"] == m["n_known_unverified"] == 1
    assert np.isnan(verified_precision(["new"])["precision_verified"])
    with pytest.raises(ValueError, match="unknown verdicts"):
        verified_precision(["stable"])
