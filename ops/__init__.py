"""Runbooks for on-call (boto3): DR readiness and promotion of the DR replica; the preflight of
what each region's account and cluster must hold before a deploy (ops/preflight.py).

Exit codes everywhere: 0 all good, 1 a check failed or a precondition refused the action,
2 bad or missing input. A runbook that finds the world in an unexpected state stops and says so.
"""
