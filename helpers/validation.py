"""Constructor checks shared by every component's Args."""

from __future__ import annotations


def require(args_name: str, problems: list[str]) -> None:
    """Raise one ValueError naming the Args type and every field that is wrong."""
    problems = [p for p in problems if p]
    if problems:
        raise ValueError(f"{args_name}: " + "; ".join(problems))
