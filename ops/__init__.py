"""Runbooks for on-call (boto3): DR readiness and promotion of the DR replica; the preflight of
what each region's account and cluster must hold before a deploy (ops/preflight.py); the major
upgrade, the PITR rehearsal, and the state backend's bootstrap (ops/bootstrap_backend.py).

Each reads the stack's outputs from their copy in the DR region (or a file), checks the
credentials' account first, and lists in its --help the IAM actions it needs; the on-call role
grants the DR runbooks' (ops/oncall.py).

Exit codes everywhere: 0 all good, 1 a check failed or a precondition refused the action,
2 cannot run: bad or missing input, no credentials, no endpoint, wrong account, a denied call -
one line, never a traceback. A runbook that finds the world in an unexpected state stops and says so.
"""
