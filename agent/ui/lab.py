"""Opening the lab for one request, and turning what can go wrong into pages people can act on."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from experiments.gitobjects import LAB_READ_ERRORS
from experiments.layout import StoreError
from experiments.store import LabStore, lab_path


class PageError(Exception):
    """An error shown as a page: HTTP status, a title, and one line saying what to do."""

    status = 500
    title = "error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = " ".join(message.split())


class NotFound(PageError):
    status = 404
    title = "not found"


class LabUnavailable(PageError):
    status = 503
    title = "lab unavailable"


class BadRequest(PageError):
    status = 400
    title = "bad request"


READ_ERRORS = LAB_READ_ERRORS


class Lab:
    """The lab the dashboard shows; opened afresh per request so a lab that appears, moves on or
    breaks while the server runs is seen as it is now."""

    def __init__(self, path: Path | str | None) -> None:
        self.path = lab_path(path)

    @contextmanager
    def open(self) -> Iterator[LabStore]:
        try:
            store = LabStore.open(self.path, create=False)
        except StoreError as exc:
            raise LabUnavailable(str(exc)) from exc
        except READ_ERRORS as exc:
            raise LabUnavailable(f"the lab at {self.path} cannot be opened ({_one_line(exc)}); "
                                 f"run `aar check --lab {self.path}`") from exc
        try:
            yield store
        except PageError:
            raise
        except StoreError as exc:
            raise LabUnavailable(str(exc)) from exc
        except READ_ERRORS as exc:
            raise LabUnavailable(f"the lab at {self.path} could not be read ({_one_line(exc)}); "
                                 f"run `aar check --lab {self.path}`") from exc
        finally:
            store.close()


def _one_line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: " + " ".join(str(exc).split())[:300]
