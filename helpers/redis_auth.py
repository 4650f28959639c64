"""Redis password rotation without an outage, driven by a config epoch.

One password per epoch (a pulumi-random resource per epoch, so the previous one still exists
while both are valid). The server authenticates through its ACL `default` user, which may hold
several passwords at once (Redis ACL: `>pass` / `#<sha256>` add one more, every one is accepted).
Moving from epoch N-1 to N takes three deploys, each safe on its own:

  rollover "servers":  servers accept N-1 and N, clients still get N-1  (servers restart, one by one)
  rollover "clients":  servers accept N-1 and N, clients get N          (apps pick up the new Secret)
  rollover "none":     servers accept N only                            (servers restart)

The server file carries only SHA-256 digests (`#...`), never the passwords themselves.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Literal

import pulumi
import pulumi_random as random

Rollover = Literal["none", "servers", "clients"]
# The pod template carries which epochs the server accepts: a change restarts the pods, which
# is how a running redis-server reads its (include) config again.
EPOCHS_ANNOTATION = "intelgraph.io/redis-acl-epochs"


def acl_conf(passwords: list[str]) -> str:
    """The include file: the default user with every accepted password, as digests."""
    digests = " ".join(f"#{hashlib.sha256(p.encode()).hexdigest()}" for p in passwords)
    return f"user default on resetpass {digests} ~* &* +@all\n"


def accepted_epochs(epoch: int, rollover: Rollover) -> list[int]:
    if rollover != "none" and epoch < 1:
        raise ValueError("a rollover needs a previous epoch: raise the epoch to 1 or more")
    return [epoch - 1, epoch] if rollover != "none" else [epoch]


def client_epoch(epoch: int, rollover: Rollover) -> int:
    return epoch - 1 if rollover == "servers" else epoch


@dataclass
class RedisAuth:
    client_password: pulumi.Output[str]
    auth_conf: pulumi.Output[str]
    epochs: list[int]


def redis_auth(name: str, epoch: int, rollover: Rollover, opts: pulumi.ResourceOptions) -> RedisAuth:
    epochs = accepted_epochs(epoch, rollover)
    # epoch 0 keeps the name the password always had, so introducing epochs rotates nothing
    passwords = {
        e: random.RandomPassword(f"{name}-password" if e == 0 else f"{name}-password-{e}",
                                 length=40, special=False, opts=opts)
        for e in sorted({*epochs, client_epoch(epoch, rollover)})
    }
    auth_conf = pulumi.Output.all(*(passwords[e].result for e in epochs)).apply(lambda values: acl_conf(list(values)))
    return RedisAuth(passwords[client_epoch(epoch, rollover)].result, pulumi.Output.secret(auth_conf), epochs)
