"""Tests for rbd.calibration: thresholds from normal scores and the normalised score."""

import json

import numpy as np
import pytest

from rbd.calibration import Calibration, calibrate, is_defective
from rbd.detector import defect_mask, verdict
from rbd.errors import InvalidInputError
from rbd.train import TrainConfig
from rbd.thresholds import RATE_RANGE, RATE_STEP, describe, set_by_hand, threshold_at

SCORES = np.random.default_rng(0).normal(1.0, 0.2, 200)


@pytest.mark.parametrize("far", [0.001, 0.01, 0.05, 0.2, 0.5])
def test_threshold_is_the_larger_of_the_empirical_and_the_normal_quantile(far):
    from scipy.stats import norm

    calibration = calibrate(SCORES, false_alarm_rate=far)
    empirical = np.quantile(SCORES, 1 - far)
    fitted = norm.ppf(1 - far, loc=SCORES.mean(), scale=SCORES.std(ddof=1))
    assert calibration.threshold == pytest.approx(max(empirical, fitted))
    assert calibration.false_alarm_rate == far
    # at most `far` of the normal scores lie above the threshold
    assert np.mean(SCORES > calibration.threshold) <= far + 1e-9


def test_few_held_out_scores_extrapolate_the_tail():
    """Five scores cannot resolve a 1% rate: the empirical quantile is nearly their maximum, which
    one new normal image in six would exceed; the fitted tail sits beyond it."""
    scores = [1.0, 1.1, 0.9, 1.05, 0.95]
    threshold = calibrate(scores, false_alarm_rate=0.01).threshold
    assert threshold == pytest.approx(np.mean(scores) + 2.3263479 * np.std(scores, ddof=1))
    assert threshold > max(scores)


def test_a_heavy_tail_keeps_the_empirical_quantile():
    scores = np.r_[np.zeros(150), np.full(50, 10.0)]  # the fitted 95% point lies below the 50 outliers
    assert calibrate(scores, false_alarm_rate=0.05).threshold == pytest.approx(10.0)


def test_a_lower_rate_never_gives_a_lower_threshold_and_a_rate_of_0_is_refused():
    """A rate of 0 gave the highest calibration score, below the threshold of 0.001 (the normal fit's tail, which no
    finite threshold leaves behind, was skipped there): it flagged more good parts than the rates above it promised."""
    scores = np.random.default_rng(0).normal(5, 1, 35)
    rates = [0.3, 0.1, 0.01, 0.001, 1e-6]
    thresholds = [calibrate(scores, false_alarm_rate=rate).threshold for rate in rates]
    assert thresholds == sorted(thresholds) and thresholds[-1] > scores.max()
    assert [calibrate(scores).threshold_for(rate) for rate in rates] == thresholds
    for refuse in (lambda: calibrate(scores, false_alarm_rate=0.0), lambda: calibrate(scores).threshold_for(0.0)):
        with pytest.raises(InvalidInputError, match=r"must be above 0 and below 1, got 0.0: a rate of 0 has no finite threshold"):
            refuse()
    with pytest.raises(InvalidInputError, match=r"false_alarm_rate must be above 0 and below 1 \(a rate of 0 has no finite threshold"):
        TrainConfig(false_alarm_rate=0)


def test_scale_is_sample_std():
    calibration = calibrate(SCORES)
    assert calibration.scale == pytest.approx(np.std(SCORES, ddof=1))


@pytest.mark.parametrize("scores", [[0.8], [0.0], [0.5, 0.5, 0.5], [0.0, 0.0], [-2.0]])
def test_scale_never_zero(scores):
    calibration = calibrate(scores)
    assert calibration.scale > 0
    value = calibration.normalize(calibration.threshold + 1.0)
    assert np.isfinite(value) and value > 0.5


def test_normalize_at_threshold_is_half():
    calibration = calibrate(SCORES)
    assert calibration.normalize(calibration.threshold) == pytest.approx(0.5)
    assert calibration.normalize(2.0, threshold=2.0) == pytest.approx(0.5)


def test_normalize_matches_logistic():
    calibration = Calibration(threshold=1.0, scale=0.5, false_alarm_rate=0.01)
    for score in (-3.0, 0.25, 1.0, 1.7, 40.0):
        assert calibration.normalize(score) == pytest.approx(1 / (1 + np.exp(-(score - 1.0) / 0.5)))


def test_normalize_float_returns_float():
    value = calibrate(SCORES).normalize(1.0)
    assert isinstance(value, float)
    assert 0.0 < value < 1.0
    assert isinstance(calibrate(SCORES).normalize(np.float32(1.0)), float)


def test_normalize_array_returns_array():
    calibration = calibrate(SCORES)
    scores = np.linspace(0, 2, 50).reshape(5, 10)
    values = calibration.normalize(scores)
    assert isinstance(values, np.ndarray)
    assert values.shape == (5, 10)
    assert values.dtype == np.float32
    for score, value in zip(scores.ravel(), values.ravel()):
        assert value == pytest.approx(calibration.normalize(float(score)), abs=1e-6)


def test_normalize_is_monotone_and_bounded():
    calibration = calibrate(SCORES)
    values = calibration.normalize(np.linspace(-100, 100, 2001))
    assert np.all(np.diff(values) >= 0)
    assert np.all(np.diff(calibration.normalize(np.linspace(0.5, 1.5, 101))) > 0)
    assert values[0] >= 0.0 and values[-1] <= 1.0
    assert np.isfinite(values).all()


def test_moving_the_threshold_moves_the_midpoint():
    calibration = calibrate(SCORES)
    higher = calibration.threshold + 0.3
    assert calibration.normalize(calibration.threshold, threshold=higher) < 0.5


def test_synthetic_catch_rate_hand_count():
    calibration = calibrate([1.0, 2.0, 3.0, 4.0, 5.0], synthetic_scores=[0.5, 5.0, 6.0, 4.9, 7.0], false_alarm_rate=0.01)
    assert calibration.threshold == pytest.approx(3.0 + 2.3263479 * np.std([1, 2, 3, 4, 5], ddof=1))  # 6.678: the fitted tail
    assert calibration.synthetic_catch_rate == pytest.approx(1 / 5)  # 7.0
    assert calibration.caught(5.0) == pytest.approx(3 / 5)  # 5.0, 6.0, 7.0: a score equal to the threshold counts


def test_catch_rate_is_none_without_synthetic_scores():
    calibration = Calibration(threshold=1.0, scale=1.0, false_alarm_rate=0.01)
    assert calibration.synthetic_catch_rate is None
    assert "synthetic" not in describe(calibration, 0.01)


def test_describe_states_threshold_rate_and_catch_rate():
    calibration = calibrate([1.0, 2.0, 3.0, 4.0, 5.0], synthetic_scores=[0.5, 5.0, 6.0, 4.9, 7.0], false_alarm_rate=0.01)
    # the interval's top: the normal fit's, 6.6783 + 1.96 * std * sqrt(1/5 + z^2 / 8); its bottom the bootstrap's
    text = ("raw threshold 6.6783 for 1% expected false alarms (5 normal images calibrate it; "
            "1% is rarer than 1 in 5, which they cannot tell apart: it lies above all their scores; "
            "95% interval 3.6450-9.5796) · catches 20% of synthetic defects"
            " · ⚠️ the threshold rests on only 5 normal images: it is a rough guess")
    assert describe(calibration, 0.01) == text and describe(calibration) == text
    assert calibration.caught(4.9) == pytest.approx(4 / 5)  # at a moved threshold, counted there: 4.9, 5.0, 6.0, 7.0



def test_describe_says_when_a_rate_is_rarer_than_the_images_can_show():
    calibration = calibrate(np.linspace(1.0, 2.0, 20), false_alarm_rate=0.05)
    assert "rarer" not in describe(calibration, 0.05)  # 1 in 20: the images show it
    assert "; 1% is rarer than 1 in 20, which they cannot tell apart: it lies above all their scores" in describe(calibration, 0.01)
    assert "rarer" not in describe(Calibration(threshold=0.5, scale=0.1, false_alarm_rate=0.01))  # made by hand: no scores to tell

def test_a_threshold_never_flags_the_calibration_scores_a_rate_below_one_in_n_cannot_resolve():
    """One outlier among 20 scores pulls the fitted normal's 1 % point under it, and tied scores all sit on a
    quantile: neither may flag more of the calibration images than the rate."""
    outlier = np.r_[np.linspace(1.0, 1.2, 19), 5.0]
    for rate in (0.01, 0.001):
        assert calibrate(outlier, false_alarm_rate=rate).threshold > 5.0
    assert calibrate(outlier, false_alarm_rate=0.10).threshold < 5.0  # 2 of 20: the scores can show it
    tied = calibrate([0.5] * 12, false_alarm_rate=0.01)
    assert tied.threshold > 0.5 and tied.expected_false_alarm_rate() == 0.0
    steps = calibrate([0.0] * 97 + [10.0] * 3, false_alarm_rate=0.01)
    assert not is_defective(10.0, steps.threshold) and steps.expected_false_alarm_rate(10.0) == 0.03  # ties count at it


def test_the_normal_spread_is_the_unit_whatever_the_scores_offset():
    scores = np.linspace(0.0, 1.0, 12)
    near, far = calibrate(scores), calibrate(scores + 100)
    assert far.scale == pytest.approx(near.scale) and len(far.problems()) == len(near.problems()) == 1  # "uncertain", both
    assert far.normalize(scores.mean() + 100) == pytest.approx(near.normalize(scores.mean()))
    assert calibrate([3.0]).scale == pytest.approx(0.15)  # one image: no spread, 5 % of the threshold


def test_a_nan_score_or_pixel_is_judged_defective():
    assert is_defective(float("nan"), 1.0) is True and is_defective(0.5, 1.0) is False
    assert verdict(float("nan"), 1.0) == "defective"
    anomaly_map = np.zeros((4, 4), np.float32)
    anomaly_map[1, 2] = np.nan
    assert defect_mask(anomaly_map, float("nan"), 1.0)[1, 2]


def test_dict_round_trip_through_json():
    original = calibrate(SCORES[:20], synthetic_scores=[1.5, 0.2, 2.0], false_alarm_rate=0.05)
    values = json.loads(json.dumps(original.to_dict()))
    assert values["synthetic_catch_rate"] == pytest.approx(original.synthetic_catch_rate)
    restored = Calibration.from_dict(values)
    assert restored == original
    assert restored.normalize(1.1) == pytest.approx(original.normalize(1.1))


def test_from_dict_without_optional_scores():
    restored = Calibration.from_dict({"threshold": "0.7", "scale": 0.1, "false_alarm_rate": 0.01})
    assert restored.threshold == 0.7 and restored.normal_scores == [] and restored.synthetic_scores == []


@pytest.mark.parametrize("scores", [[], np.array([])])
def test_empty_scores_rejected(scores):
    with pytest.raises(ValueError):
        calibrate(scores)


@pytest.mark.parametrize("far", [-0.01, 1.0, 1.5])
def test_far_out_of_range_rejected(far):
    with pytest.raises(ValueError, match="false_alarm_rate"):
        calibrate(SCORES, false_alarm_rate=far)


def test_grey_zone_is_centred_on_the_threshold_in_units_of_the_normal_spread():
    c = calibrate([0.1, 0.2, 0.3, 0.4])
    low, high = c.grey_zone(0.5, width=2.0)
    assert low == pytest.approx(0.5 - 2 * c.scale) and high == pytest.approx(0.5 + 2 * c.scale)
    assert c.normalize(low, 0.5) == pytest.approx(1 / (1 + np.exp(2))) and c.normalize(high, 0.5) == pytest.approx(1 / (1 + np.exp(-2)))


def test_threshold_interval_covers_the_true_quantile_even_from_few_images():
    """Normal scores with a known 99% point: from 15 images the interval must still hold it most of the time."""
    true_threshold = 1.0 + 2.3263479 * 0.2
    covered = [calibrate(np.random.default_rng(seed).normal(1.0, 0.2, 15)).interval for seed in range(40)]
    assert np.mean([low <= true_threshold <= high for low, high in covered]) >= 0.85
    few, many = calibrate(np.random.default_rng(1).normal(1.0, 0.2, 15)), calibrate(np.random.default_rng(1).normal(1.0, 0.2, 300))
    for c in (few, many):
        assert c.interval[0] <= c.threshold <= c.interval[1]
    assert many.interval[1] - many.interval[0] < few.interval[1] - few.interval[0]
    assert calibrate(SCORES).interval == calibrate(SCORES).interval  # seeded: the same scores, the same interval
    assert calibrate([1.0]).interval is None


def test_threshold_for_a_rate_and_the_rate_at_a_threshold_agree():
    calibration = calibrate(SCORES, false_alarm_rate=0.01)
    for rate in (0.005, 0.01, 0.05, 0.2):
        threshold = calibration.threshold_for(rate)
        assert calibration.expected_false_alarm_rate(threshold) == pytest.approx(rate, abs=0.006)
    assert calibration.threshold_for(0.01) == pytest.approx(calibration.threshold)
    assert calibration.threshold_for(0.05) < calibration.threshold_for(0.01)
    assert calibration.threshold_for(0.05) == calibrate(SCORES, false_alarm_rate=0.05).threshold  # calibration's own rule
    with pytest.raises(InvalidInputError, match="false_alarm_rate"):
        calibration.threshold_for(1.0)


def test_a_calibration_without_normal_scores_knows_only_its_own_rate():
    """Made by hand (the API takes any Calibration): other rates are an error the app can show, not a bare ValueError."""
    made = Calibration(threshold=6.0, scale=1.0, false_alarm_rate=0.01)
    assert threshold_at(made, 0.01) == 6.0
    for ask in (lambda: threshold_at(made, 0.005), lambda: made.expected_false_alarm_rate(7.0)):
        with pytest.raises(InvalidInputError, match="stores no normal scores: its threshold is known only for the 1% false-alarm rate"):
            ask()


def test_a_threshold_set_by_hand_gives_a_calibration_whose_rate_returns_it_exactly():
    calibration = calibrate(SCORES, false_alarm_rate=0.01)
    assert set_by_hand(calibration, calibration.threshold) is calibration
    for threshold in (calibration.threshold * 0.9, calibration.threshold * 5, float(np.median(SCORES))):
        moved = set_by_hand(calibration, threshold)
        assert threshold_at(moved, moved.false_alarm_rate) == threshold and moved.interval is None
        assert RATE_RANGE[0] <= moved.false_alarm_rate <= RATE_RANGE[1]
        assert moved.false_alarm_rate == pytest.approx(min(max(calibration.expected_false_alarm_rate(threshold), RATE_RANGE[0]),
                                                           RATE_RANGE[1]), abs=RATE_STEP / 2)
        assert moved.normal_scores == calibration.normal_scores
    made = Calibration(threshold=6.0, scale=1.0, false_alarm_rate=0.01)  # by hand, no normal scores: its rate stays
    assert threshold_at(set_by_hand(made, 7.0), 0.01) == 7.0


def test_problems_name_few_images_and_a_threshold_that_catches_nothing():
    assert calibrate(SCORES, synthetic_scores=[5.0, 6.0]).problems() == []
    few = calibrate([1.0, 1.1, 0.9], synthetic_scores=[5.0])
    assert any("only 3 normal images" in p for p in few.problems())
    blind = calibrate(SCORES, synthetic_scores=[0.1, 0.2])
    assert any("none of the synthetic defects" in p for p in blind.problems())
    assert not any("synthetic" in p for p in blind.problems(threshold=0.05))


def test_only_the_calibrated_threshold_is_called_uncertain_by_its_interval():
    spread = calibrate(np.random.default_rng(0).normal(1.0, 0.2, 12).tolist() + [3.0])  # one far normal image: a wide interval
    assert spread.interval[1] - spread.interval[0] > 2 * spread.scale
    low, high = (spread.expected_false_alarm_rate(end) for end in spread.interval)
    assert high < 1e-4 and 0.45 < low < 0.46  # the calibrated 1 % within the interval, said in false alarms, as a person reads them
    assert ("the threshold is uncertain: its 95% interval is wider than two normal spreads, from under 0.01% to 46% "
            "expected false alarms; a 1% rate rests on the highest few of the 13 normal scores: a higher rate rests on more of "
            "them, and a recalibration in the app adds the images a review accepted as good") in spread.problems()  # what to do
    assert not any("uncertain" in p for p in spread.problems(threshold=spread.threshold_for(0.1)))  # another rate's


def test_the_calibration_figure_counts_whole_images_and_shows_the_thresholds_interval():
    from rbd.plots import calibration_figure

    calibration = calibrate([1.0, 1.2, 1.1, 1.3, 0.9], [3.0, 2.5], false_alarm_rate=0.01)
    axes = calibration_figure(calibration).axes[0]
    assert all(float(tick).is_integer() for tick in axes.get_yticks())  # 5 images: no tick at 0.25 of one
    low, high = calibration.interval
    assert any(label.startswith(f"its 95% interval {low:.4f}") for label in axes.get_legend_handles_labels()[1])
    figure = calibration_figure(calibration)  # the legend below the bars, where it covers none (inside it covered some)
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(figure).draw()  # laid out as it is drawn for the page
    renderer = figure.canvas.get_renderer()
    assert axes.get_legend() is None and figure.legends[0].get_window_extent(renderer).y1 < figure.axes[0].get_window_extent(renderer).y0
    moved = calibration_figure(calibration, calibration.threshold + 1).axes[0]  # a threshold set by hand: no interval of it
    assert not any("interval" in label for label in moved.get_legend_handles_labels()[1])
    for threshold in (calibration.threshold, 1.15, 2.7):  # no bar straddles the threshold: a normal one drawn across it
        edges = sorted({round(x, 9) for bar in calibration_figure(calibration, threshold).axes[0].patches
                        for x in (bar.get_x(), bar.get_x() + bar.get_width())})
        assert any(abs(edge - threshold) < 1e-6 for edge in edges), (threshold, edges)
    for calibration in (Calibration(3.1, 1.0, 0.01, [0.1, 3.0], []), Calibration(5.0, 1.0, 0.01, [5.0, 5.0], [])):
        bars = calibration_figure(calibration).axes[0].patches  # every score drawn: rounding left one out, ties all
        assert sum(bar.get_height() for bar in bars) == len(calibration.normal_scores)


def test_a_threshold_set_by_hand_past_the_controls_end_is_described_by_its_own_rate():
    """A threshold under every normal score read "for 30% expected false alarms" (the control's end), not its 100%."""
    calibration = calibrate(SCORES, false_alarm_rate=0.01)
    low = set_by_hand(calibration, min(SCORES) - 10)
    assert low.false_alarm_rate == RATE_RANGE[1]  # the control stands at its end
    text = describe(low, RATE_RANGE[1])
    assert f"raw threshold {min(SCORES) - 10:.4f}, set by hand, for 100% expected false alarms (past the control's 30%" in text
    assert "set by hand" not in describe(calibration, RATE_RANGE[1])  # the calibration's own threshold at the control's end
    high = set_by_hand(calibration, max(SCORES) + 1000)
    assert "set by hand, for under 0.01% expected false alarms (past the control's 0.01%" in describe(high, RATE_RANGE[0])
    three = calibrate([1.0, 1.2, 1.4])
    between = describe(set_by_hand(three, 1.1), RATE_RANGE[1])
    assert "set by hand" in between and "lies above all their scores" not in between  # it lies between them
