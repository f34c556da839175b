"""The one error tree of framemask.

FramemaskError
├── InputError            bad input a user can fix (the CLI exits 2, the API answers 4xx)
│   ├── NotAVideoError    not a decodable video: non-video, truncated, zero frames, absurd size
│   ├── FrameRangeError   a seq or time outside the video
│   └── NotFoundError     a missing file, unknown id or object key
├── ModelError            a detection model is missing or broken (run setup)
└── StorageError          object storage or database failure
    └── DiskFullError     no space left on the server's disk (503 with Retry-After; jobs wait)
"""


class FramemaskError(Exception):
    """Base of every error framemask raises on purpose."""


class InputError(FramemaskError):
    """Bad input that the user can fix."""


class NotAVideoError(InputError):
    """The input is not a decodable video (non-video, truncated, zero frames, absurd size)."""


class FrameRangeError(InputError):
    """A frame number or time outside the video."""


class NotFoundError(InputError):
    """A missing file, unknown id or object key."""


class ModelError(FramemaskError):
    """A detection model is missing or unusable."""


class StorageError(FramemaskError):
    """Object storage or database failure."""


class DiskFullError(StorageError):
    """No space left on the server's disk: writes answer 503 with `Retry-After`, jobs wait for space."""

    def __init__(self, message: str, retry_after: float = 30.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after
