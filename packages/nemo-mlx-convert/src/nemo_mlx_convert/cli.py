"""The `nemo-mlx-convert` command. Not built yet: it says so and exits with status 2."""

import sys


def main(argv: list[str] | None = None) -> int:
    print(
        "nemo-mlx-convert: not built yet (issue #3); no model can be run with this version.",
        file=sys.stderr,
    )
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
