"""How a Ray job is spread: plain data, so that no caller needs Ray to describe one."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RayOptions:
    """Where and how wide: `address` (None: a local Ray started here; "auto": the running
    cluster; or host:port / ray://...), actors (None: as many as the cluster's CPUs, or GPUs,
    allow), resources per actor, rows per batch."""

    address: str | None = None
    actors: int | None = None
    cpus_per_actor: float = 1.0
    gpus_per_actor: float = 0.0
    batch_size: int = 8
