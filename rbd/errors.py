"""The exceptions rbd raises for bad input, so callers can tell user mistakes from bugs.

Every one derives from `RBDError`; the CLI prints its message on one line and exits with 2.
"""


class RBDError(Exception):
    """Base class: a problem with the user's input, explained in the message."""


class InvalidInputError(RBDError, ValueError):
    """A setting or argument is out of range or of the wrong kind (device, epochs, session id, ...)."""


class ImageReadError(RBDError):
    """A file is not a readable image (not an image, corrupt, truncated, too large)."""


class NoImagesError(RBDError):
    """A folder or file list holds no usable image."""


class UploadError(RBDError):
    """An uploaded file cannot be used: not a zip, corrupt, too large, or nothing safe inside."""


class DatasetLayoutError(RBDError):
    """A folder does not have the MVTec AD layout that evaluation needs."""


class CheckpointError(RBDError):
    """A checkpoint is missing, not rbd's, or made by an incompatible version."""


class BackboneError(RBDError):
    """A teacher backbone is unknown or its pretrained weights are unavailable."""


class TrainingCancelled(RBDError):
    """Training was stopped by the caller before it finished."""
