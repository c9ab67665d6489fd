"""The exceptions rbd raises for problems it can explain, so callers can tell them from bugs.

Every one derives from `RBDError`; the CLI prints its message on one line and exits with its
`exit_status`: 2 when the input is at fault (as Unix tools report usage errors and bad data),
1 when something failed while running (`HubError`).
"""

import importlib.util


class RBDError(Exception):
    """Base class: a problem with the user's input, explained in the message."""

    exit_status = 2


class InvalidInputError(RBDError, ValueError):
    """A setting or argument is out of range or of the wrong kind (device, epochs, session id, ...)."""


class ImageReadError(RBDError):
    """A file is not a readable image (not an image, corrupt, truncated, too large)."""


class NoImagesError(RBDError):
    """A folder or file list holds no usable image; `unreadable`: why each file tried was refused, so that a caller
    trying several lists in turn can say it of all of them at once."""

    def __init__(self, message: str, unreadable: list[str] = ()):
        super().__init__(message)
        self.unreadable = list(unreadable)


class UploadError(RBDError):
    """An uploaded file cannot be used: not a zip, corrupt, too large, or nothing safe inside."""


class DatasetLayoutError(RBDError):
    """A folder does not have the MVTec AD layout that evaluation needs."""


class CheckpointError(RBDError):
    """A checkpoint is missing, not rbd's, or made by an incompatible version."""


class BackboneError(RBDError):
    """A teacher backbone is unknown or its pretrained weights are unavailable."""


class HubError(RBDError):
    """The Hugging Face Hub cannot be reached or failed a request, and no cached copy serves: the
    input may be fine, and the same command can work later."""

    exit_status = 1


class EngineError(RBDError):
    """A distributed job (Ray) failed while running, not for its input: the same command can work later."""

    exit_status = 1


class TrainingCancelled(RBDError):
    """Training was stopped by the caller before it finished."""


def require_modules(names: tuple[str, ...], needed_for: str, extra: str, packages: dict[str, str] | None = None) -> None:
    """Say in one line, before any work, which of the modules `names` (of rbd's optional `extra`; `packages`: the pip
    name of a module installed by another) are missing for `needed_for` and how to install them: not later, in a
    traceback."""
    missing = [name for name in names if importlib.util.find_spec(name) is None]
    if missing:
        install = " ".join((packages or {}).get(name, name) for name in missing)
        raise InvalidInputError(f"{needed_for} needs {' and '.join(missing)}: pip install {install} (or -r "
                                f"requirements.txt, or \".[{extra}]\" in rbd's checkout)")
