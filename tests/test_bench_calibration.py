"""bench/calibration.py's measurement at the calibrated threshold: counts and flagged files agree."""

import copy

from bench.calibration import measure


def test_false_alarms_and_recall_at_the_threshold_name_the_flagged_normal_images(detector, category):
    result = measure(detector, category)
    assert result["good_images"] == 5 and result["defective_images"] == 5  # conftest's test set
    assert len(result["false_alarm_files"]) == result["false_alarms"]
    assert result["false_alarm_rate"] == result["false_alarms"] / result["good_images"]

    everything = copy.copy(detector)
    everything.threshold = -1e9  # every image flagged: all normal ones are false alarms, every defect found
    flagged = measure(everything, category)
    assert flagged["false_alarms"] == 5 and flagged["recall"] == 1.0
    assert sorted(flagged["false_alarm_files"]) == sorted(f"test/good/{p.name}" for p in (category / "test" / "good").iterdir())
