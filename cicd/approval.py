"""Who approved a stateful change on a pull request: an approving review, by someone other than the
author, on the pull request's current head commit. Nothing else counts (no label, no older review).

GitHub facts this rests on (REST API "List reviews for a pull request"): the reviews of a pull
request are listed oldest first, each with ``user.login``, ``state`` (APPROVED, CHANGES_REQUESTED,
COMMENTED, DISMISSED, PENDING) and ``commit_id``, the head commit the review was given on. A dismissed
approval is listed with state DISMISSED; a reviewer's later COMMENTED review does not withdraw their
approval, a later CHANGES_REQUESTED does. A re-run of a workflow run replays the original event, so
its ``pull_request.head.sha`` is the commit it first ran for, which may no longer be the head.

    python -m cicd.approval --head-sha SHA --run-sha SHA --author LOGIN --reviews reviews.json

prints the approvers' logins (comma-separated) and exits 0, or explains why not on stderr and exits 1
(2 for unreadable input). ``reviews.json`` is ``gh api --paginate --slurp .../reviews`` (a list of
pages) or one list.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

# States that decide a reviewer's standing; COMMENTED and PENDING leave it as it was.
DECIDING = {"APPROVED", "CHANGES_REQUESTED", "DISMISSED"}


@dataclass(frozen=True)
class Decision:
    approvers: tuple[str, ...]
    reason: str

    @property
    def approved(self) -> bool:
        return bool(self.approvers)


def decide(head_sha: str, author: str, reviews: Iterable[dict[str, Any]], run_sha: str | None = None) -> Decision:
    """The approval of ``head_sha`` by reviewers other than ``author``, from the pull request's
    reviews (oldest first). ``run_sha`` is the commit the workflow run is for: a re-run of an older
    run cannot approve the current head."""
    if not head_sha:
        raise ValueError("head_sha is empty: the pull request's current head commit is required")
    if run_sha is not None and run_sha != head_sha:
        return Decision((), f"this run is for {run_sha[:12]}, but the pull request's head is now {head_sha[:12]}: "
                            "approvals count only on the head commit (re-run the latest run)")
    standing: dict[str, dict[str, Any]] = {}
    for review in reviews:
        login = (review.get("user") or {}).get("login") or ""
        if review.get("state") in DECIDING and login:
            standing[login.lower()] = review  # the reviewer's latest deciding review wins
    approvers, ignored = [], []
    for review in standing.values():
        login = review["user"]["login"]
        if review["state"] != "APPROVED":
            continue
        if login.lower() == author.lower():
            ignored.append(f"{login} is the author")
        elif review.get("commit_id") != head_sha:
            ignored.append(f"{login} approved {str(review.get('commit_id'))[:12]}, not the head")
        else:
            approvers.append(login)
    if approvers:
        return Decision(tuple(sorted(approvers, key=str.lower)), "approved on the head commit")
    detail = f" ({'; '.join(ignored)})" if ignored else ""
    return Decision((), f"no approving review of {head_sha[:12]} by a reviewer other than {author}{detail}")


def _flatten(document: Any) -> list[dict[str, Any]]:
    """``gh api --paginate --slurp`` gives a list of pages; a single page is a list of reviews."""
    if not isinstance(document, list):
        raise ValueError("expected a JSON list of reviews (or of pages of reviews)")
    if all(isinstance(item, list) for item in document):
        return [review for page in document for review in page]
    return document


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cicd.approval", description=(__doc__ or "").partition("\n")[0])
    parser.add_argument("--head-sha", required=True, help="the pull request's current head commit (from the API)")
    parser.add_argument("--run-sha", help="the commit this workflow run is for (github.event.pull_request.head.sha)")
    parser.add_argument("--author", required=True, help="the pull request's author")
    parser.add_argument("--reviews", type=Path, required=True, help="the pull request's reviews as JSON")
    args = parser.parse_args(argv)
    try:
        decision = decide(args.head_sha.strip(), args.author, _flatten(json.loads(args.reviews.read_text())),
                          run_sha=(args.run_sha or "").strip() or None)
    except (OSError, ValueError) as exc:
        print(f"cicd.approval: {exc}", file=sys.stderr)
        return 2
    if not decision.approved:
        print(f"not approved: {decision.reason}", file=sys.stderr)
        return 1
    print(",".join(decision.approvers))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
