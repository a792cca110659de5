"""`nemo-mlx-serve`: load the models named, then serve them until SIGTERM or Ctrl-C."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from speech_transcript.cli import (
    add_diarize_argument,
    add_dtype_argument,
    command_parser,
    run_command,
)
from speech_transcript.options import float_between

from .app import ServerSettings, create_app
from .batching import BatchLimits
from .compute import Compute
from .models import ModelLoadError, ModelSpec, load_diarizer, load_recognizer
from .uploads import UploadLimits

PROG = "nemo-mlx-serve"


def build_parser() -> argparse.ArgumentParser:
    parser = command_parser(PROG, "An OpenAI-compatible transcription server for Parakeet and "
                                  "Canary models on MLX.")  # fmt: skip
    models = parser.add_argument_group("models")
    models.add_argument("--model", action="append", required=True, metavar="[NAME=]REF",
                        help="a model to serve (repeat for several): `demo`, a Hugging Face repo id, "
                             "a .nemo file or a converted directory; served as NAME, else as REF")  # fmt: skip
    add_dtype_argument(models)
    add_diarize_argument(models)
    models.add_argument(
        "--cache-dir",
        type=Path,
        help="where converted models are kept (default: ~/.cache/nemo-mlx)",
    )
    net = parser.add_argument_group("network")
    net.add_argument(
        "--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)"
    )
    net.add_argument("--port", type=int, default=8000, help="HTTP port (default 8000)")
    net.add_argument("--wyoming-port", type=int, metavar="PORT",
                     help="also serve Home Assistant's Wyoming protocol on this TCP port, on the same "
                          "--host (default: off)")  # fmt: skip
    net.add_argument("--api-key", help="require `Authorization: Bearer KEY` on /v1 routes "
                                       "(default: the NEMO_MLX_API_KEY environment variable, else none)")  # fmt: skip
    limits = parser.add_argument_group("limits")
    limits.add_argument("--max-upload-mb", type=float_between(0.001, 4096), default=200.0,
                        help="largest upload in MiB (default 200); larger ones get 413")  # fmt: skip
    limits.add_argument("--max-audio-seconds", type=float_between(1, 86400), default=14400.0,
                        help="longest audio in seconds (default 14400: 4 hours); longer gets 413")  # fmt: skip
    limits.add_argument("--request-timeout", type=float_between(1, 86400), default=900.0,
                        help="seconds from upload to answer before a 504 (default 900)")  # fmt: skip
    limits.add_argument("--idle-timeout", type=float_between(1, 3600), default=30.0,
                        help="seconds an idle connection is kept open, HTTP, realtime or Wyoming (default 30)")  # fmt: skip
    limits.add_argument("--max-streams", type=int, default=64,
                        help="realtime and Wyoming sessions at once; more are refused (429 or a "
                             "Wyoming error) until one closes (default 64)")  # fmt: skip
    batching = parser.add_argument_group("batching")
    batching.add_argument(
        "--max-batch", type=int, default=16, help="requests decoded together at most (default 16)"
    )
    batching.add_argument("--max-wait-ms", type=float_between(0, 10000), default=20.0,
                          help="how long a request waits for others to batch with, while other uploads "
                               "are being received (default 20 ms)")  # fmt: skip
    batching.add_argument("--batch-size", type=int,
                          help="the model's batch size within a round, as the CLI's --batch-size "
                               "(default: --max-batch, so that a full round is one batch)")  # fmt: skip
    return parser


def check_bindable(host: str, port: int, option: str) -> None:
    """Fail in one line before the models load, not in a traceback from the app's startup."""
    import os
    import socket

    try:
        with socket.create_server((host, port)):
            pass
    except OSError as err:
        reason = os.strerror(err.errno) if err.errno else str(err)
        raise ModelLoadError(f"{option} {port}: cannot listen on {host}: {reason}") from None


def batch_limits(args: argparse.Namespace) -> BatchLimits:
    """The rounds' limits; the model's batch size follows --max-batch unless given, so that
    `--max-batch 32` makes rounds of 32 that run as one batch, not two of the default 16."""
    batch_size = args.max_batch if args.batch_size is None else args.batch_size
    if args.max_batch < 1 or batch_size < 1:
        raise ModelLoadError("--max-batch and --batch-size must be at least 1")
    return BatchLimits(max_batch=args.max_batch, max_wait=args.max_wait_ms / 1000,
                       batch_size=batch_size)  # fmt: skip


def run(args: argparse.Namespace) -> int:
    import os

    import uvicorn

    batch = batch_limits(args)
    if args.max_streams < 1:
        raise ModelLoadError("--max-streams must be at least 1")
    if not 0 < args.port < 65536:
        raise ModelLoadError(f"--port must be between 1 and 65535, got {args.port}")
    check_bindable(args.host, args.port, "--port")
    if args.wyoming_port is not None:
        if not 0 < args.wyoming_port < 65536 or args.wyoming_port == args.port:
            raise ModelLoadError(f"--wyoming-port must be between 1 and 65535 and not --port, "
                                 f"got {args.wyoming_port}")  # fmt: skip
        check_bindable(args.host, args.wyoming_port, "--wyoming-port")
    specs = [ModelSpec.parse(text) for text in args.model]
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise ModelLoadError(f"two --model arguments serve the same name: {', '.join(names)}")
    compute, recognizers = Compute(), []
    for spec in specs:
        started = time.perf_counter()
        recognizers.append(compute.call(load_recognizer, spec, args.cache_dir, args.dtype))
        print(f"{PROG}: loaded {spec.name} ({recognizers[-1].kind}) in "
              f"{time.perf_counter() - started:.1f} s", file=sys.stderr)  # fmt: skip
    diarizer = compute.call(load_diarizer, args.diarize, args.cache_dir)
    for recognizer in recognizers:
        recognizer.diarizer = diarizer
    settings = ServerSettings(
        api_key=args.api_key or os.environ.get("NEMO_MLX_API_KEY") or None,
        upload=UploadLimits(
            max_bytes=int(args.max_upload_mb * 2**20),
            max_seconds=args.max_audio_seconds,
            read_timeout=min(args.request_timeout, 600.0),
        ),
        batch=batch,
        request_timeout=args.request_timeout,
        idle_timeout=args.idle_timeout,
        wyoming_host=args.host,
        wyoming_port=args.wyoming_port,
        max_streams=args.max_streams,
    )
    app = create_app(recognizers, compute, settings)
    if args.host not in ("127.0.0.1", "localhost", "::1") and settings.api_key is None:
        print(f"{PROG}: warning: listening on {args.host} without --api-key", file=sys.stderr)
    if args.host not in ("127.0.0.1", "localhost", "::1") and args.wyoming_port is not None:
        print(f"{PROG}: warning: Wyoming has no API key: anyone who reaches {args.host}:"
              f"{args.wyoming_port} can use it", file=sys.stderr)  # fmt: skip
    uvicorn.run(app, host=args.host, port=args.port, timeout_keep_alive=int(args.idle_timeout),
                timeout_graceful_shutdown=int(args.request_timeout), log_level="info",
                access_log=False, ws="websockets-sansio")  # fmt: skip
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_command(PROG, run, args, (ModelLoadError,))


if __name__ == "__main__":
    sys.exit(main())
