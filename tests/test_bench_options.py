"""bench.options.epochs_for: the epochs that make about the asked-for training steps."""

from bench.options import epochs_for


def test_epochs_for_steps_count_the_images_training_keeps():
    assert epochs_for(60, 100) == 5  # 90 train after the hold-out of 10, batches of 8: 12 steps an epoch
    # 1000 images keep at most 50 back: 950 train, 119 steps an epoch (a tenth held out, 113, would make 340 steps 4 epochs)
    assert epochs_for(339, 1000) == 3 and epochs_for(340, 1000) == 3 and epochs_for(358, 1000) == 4
    assert epochs_for(1, 10) == 1
