"""Running a Hydra app from the command line: user mistakes end in one line on stderr, bugs in a traceback."""

from __future__ import annotations

import os
import sys
from typing import Any, Callable, NoReturn, Optional

from mnist_hydra.errors import UserError
from mnist_hydra.messages import describe


def run_app(app: Callable[[], Any], prog: str) -> None:
    """Call a `@hydra.main` function; a user error becomes `PROG: error: ...` and its exit code."""
    wants_traceback = os.environ.get("HYDRA_FULL_ERROR") == "1"
    # Hydra prints its own multi-line report unless this is set; set, it raises and we word the error.
    os.environ["HYDRA_FULL_ERROR"] = "1"
    try:
        app()
    except Exception as err:
        if wants_traceback or user_error(err) is None:
            raise
        exit_with(err, prog)


def user_error(err: BaseException) -> Optional[BaseException]:
    """The user's mistake behind `err`, or None for a bug.

    A UserError raised inside an OmegaConf resolver reaches us wrapped in an
    InterpolationResolutionError (as its __context__), so the chain is searched first.
    """
    seen: set[int] = set()
    link: Optional[BaseException] = err
    while link is not None and id(link) not in seen:
        if isinstance(link, UserError):
            return link
        seen.add(id(link))
        link = link.__cause__ or link.__context__
    return err if describe(err) is not None else None


def exit_with(err: BaseException, prog: str) -> NoReturn:
    """Print `err` as one line (`PROG: error: ...`) and exit with its code (2 unless it says otherwise)."""
    cause = user_error(err) or err
    print(f"{prog}: error: {describe(cause)}", file=sys.stderr)
    sys.exit(getattr(cause, "exit_code", 2))
