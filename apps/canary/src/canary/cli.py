"""The `canary` command. Not built yet: it says so and exits with status 2."""

import sys


def main(argv: list[str] | None = None) -> int:
    print(
        "canary: not built yet (issue #7); no model can be run with this version.",
        file=sys.stderr,
    )
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
