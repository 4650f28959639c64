"""Redis password rotation without an outage, driven by a config epoch.

One password per epoch (a pulumi-random resource per epoch, so the previous one still exists
while both are valid). The server authenticates through its ACL `default` user, which may hold
several passwords at once (Redis ACL: `>pass` / `#<sha256>` add one more, every one is accepted).
Moving from epoch N-1 to N takes three deploys, each safe on its own:

  rollover "servers":  servers accept N-1 and N, clients still get N-1  (servers restart, one by one)
  rollover "clients":  servers accept N-1 and N, clients get N          (apps pick up the new Secret)
  rollover "none":     servers accept N only                            (servers restart)

The server file carries only SHA-256 digests (`#...`), never the passwords themselves.

The order between deploys. Stack settings see one deploy, never the one before, and every state
above is valid on its own, so a one-field edit can still skip a step: epoch N-1 -> N with
rollover "none" drops the old password from the servers in the same deploy that hands clients
the new one. The engine holds what happened before, so the order is enforced there: each step
leaves a witness (a small random string, ``<name>-rotation-<epoch>-<step>``), and the next step
registers that witness so that it can only be *kept*, never created. Its ``length`` is 0 under
``ignore_changes: [length]``: for a witness already in the state, the engine puts the old length
back before the provider checks the inputs; for a new one it checks them as given
(pulumi/pulumi pkg/resource/deploy/step_generator.go, ``processIgnoreChanges`` only when there
is an old resource, then ``prov.Check``), and the random provider refuses a length below 1
(terraform-provider-random internal/provider/resource_string.go, ``int64validator.AtLeast(1)``;
the Plugin Framework bridge runs those validators in Check since pulumi-terraform-bridge #1163).
So ``pulumi preview`` fails on the witness of the skipped step, naming it, before anything changes:

  none at 0      creates  0-clients                      (a new stack hands clients epoch 0)
  servers at N   creates  N-servers;  keeps N-1-clients  (clients hold N-1)
  clients at N   creates  N-clients;  keeps N-servers    (servers accept N), and N-1-clients
                                                         (so the clients step can be undone)
  none at N >= 1                      keeps N-clients    (clients were handed N)

A new stack therefore starts at epoch 0 with rollover "none". Lowering the epoch is not guarded
(epoch 0's witness is creatable, as a new stack needs; a clients step and the settled epoch
before it share the witness that lets the clients step be undone): never lower an epoch.
tests/test_secret_rotation.py checks every transition between these states against what a
client needs. docs/runbooks.md has the procedure.
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


Step = Literal["servers", "clients"]


def step_witnesses(epoch: int, rollover: Rollover) -> list[tuple[int, Step, bool]]:
    """(epoch, step, keep_only) of every witness this state registers (see the module docstring)."""
    if rollover == "servers":
        return [(epoch, "servers", False), (epoch - 1, "clients", True)]
    if rollover == "clients":
        return [(epoch, "servers", True), (epoch, "clients", False), (epoch - 1, "clients", True)]
    return [(epoch, "clients", epoch >= 1)]


def _witness(name: str, epoch: int, step: Step, keep_only: bool, opts: pulumi.ResourceOptions) -> random.RandomString:
    return random.RandomString(
        f"{name}-rotation-{epoch}-{step}",
        length=0 if keep_only else 8,  # 0: refused by the provider unless the state already holds it
        special=False,
        opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(ignore_changes=["length"])))


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
    for witness_epoch, step, keep_only in step_witnesses(epoch, rollover):
        _witness(name, witness_epoch, step, keep_only, opts)
    auth_conf = pulumi.Output.all(*(passwords[e].result for e in epochs)).apply(lambda values: acl_conf(list(values)))
    return RedisAuth(passwords[client_epoch(epoch, rollover)].result, pulumi.Output.secret(auth_conf), epochs)
