"""A manifest job as a Ray Data pipeline: the pending rows (longest first) -> `map_batches`
through a pool of actors that each build the transcriber once -> each finished block
written by the driver as a shard -> the output manifest merged in input order.

Only the driver touches the output, so workers on other machines need the audio files
(at the paths the manifest gives) but no shared output folder. An actor whose process dies
is restarted and its batch retried by Ray Data (its defaults: `max_restarts=-1`,
`max_task_retries=-1`); rows are keyed by their index, so a retried batch is never counted
twice. This module is the only one that imports Ray."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from .job import JobError, JobReport, Transcriber, pending, transcribe_entries
from .manifest import Entry
from .options import RayOptions
from .store import Store


class _Actor:
    """One pool member: builds its transcriber once, then transcribes batches of rows, all
    on one thread of its own: Ray calls an actor from threads other than the one that built
    it, and MLX's streams belong to the thread that made them."""

    def __init__(self, factory: Callable[[], Transcriber], words: bool) -> None:
        self.thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="transcriber")
        self.transcriber = self.thread.submit(factory).result()
        self.words = words

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        entries = [Entry(int(i), json.loads(row), Path(folder))
                   for i, row, folder in zip(batch["index"], batch["row"], batch["folder"], strict=True)]  # fmt: skip
        work = self.thread.submit(transcribe_entries, self.transcriber, entries, self.words)
        results, seconds = work.result()
        return {
            "index": np.array([i for i, _ in results], dtype=np.int64),
            "row": np.array(
                [json.dumps(row, ensure_ascii=False) for _, row in results], dtype=object
            ),
            "audio": np.full(len(results), seconds / max(1, len(results))),
        }


def run_ray(
    entries: list[Entry],
    factory: Callable[[], Transcriber],
    output: str | Path,
    options: RayOptions,
    *,
    words: bool = False,
    progress: Callable[[int], None] | None = None,
    quiet: bool = True,
) -> JobReport:
    """Transcribe the rows not finished in `output` on Ray; `factory` (picklable: a module
    function or a `functools.partial` of one) builds each actor's transcriber."""
    try:
        import ray
        import ray.data
    except ImportError:
        raise JobError("--ray needs Ray Data: pip install 'speech-corpus[ray]' (or the app's "
                       "[ray] extra)") from None  # fmt: skip
    store = Store(output)
    todo, resumed = pending(entries, store)
    if quiet:  # Ray's own warnings and notices on the driver (the workers' stay in its logs)
        for name in ("ray", "ray.data"):
            logging.getLogger(name).setLevel(logging.ERROR)
    if not ray.is_initialized():
        ray.init(address=options.address, log_to_driver=not quiet,
                 logging_level="ERROR" if quiet else "INFO")  # fmt: skip
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = not quiet
    context.print_on_execution_start = not quiet
    start = time.perf_counter()
    audio = 0.0
    if todo:
        items = [
            {"index": e.index, "row": json.dumps(e.row), "folder": str(e.folder)} for e in todo
        ]
        blocks = max(1, -(-len(items) // options.batch_size))
        dataset = ray.data.from_items(items, override_num_blocks=blocks).map_batches(
            _Actor,
            fn_constructor_args=(factory, words),
            batch_size=options.batch_size,
            compute=ray.data.ActorPoolStrategy(size=_actors(ray, options)),
            num_cpus=options.cpus_per_actor,
            num_gpus=options.gpus_per_actor,
        )
        try:
            for batch in dataset.iter_batches(batch_size=None, batch_format="numpy"):
                rows = [(int(i), json.loads(row)) for i, row in zip(batch["index"], batch["row"], strict=True)]  # fmt: skip
                store.write(rows)
                audio += float(np.sum(batch["audio"]))
                if progress is not None:
                    progress(len(rows))
        except Exception as err:  # Ray's carry the worker's traceback: the last line says why
            lines = [line for line in str(err).splitlines() if line.strip()]
            raise JobError(f"the Ray job failed: {lines[-1] if lines else type(err).__name__} "
                           f"(finished rows are kept: rerun to resume)") from err  # fmt: skip
    seconds = time.perf_counter() - start
    return JobReport(store.merge(entries), len(todo), resumed, audio, seconds)


def _actors(ray: Any, options: RayOptions) -> int:
    """The pool size: as asked, or what the cluster's CPUs (GPUs, when actors take them) hold."""
    if options.actors is not None:
        return options.actors
    resources = ray.cluster_resources()
    if options.gpus_per_actor > 0:
        return max(1, int(resources.get("GPU", 0) // options.gpus_per_actor))
    return max(1, int(resources.get("CPU", 1) // options.cpus_per_actor))
