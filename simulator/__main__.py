"""``python -m simulator [--config FILE] [--host H] [--port P] [--stats-file F]``.

The harness CLI (``secton-harness serve``) calls :func:`simulator.server.serve` directly;
this entry point exists for tests and for running the server alone. Bad input prints
one line to stderr and exits 2.
"""

from __future__ import annotations

import argparse
import sys

from secton_harness.errors import HarnessError
from simulator.server import serve


def main(argv: list[str] | None = None) -> int:
    """Parse flags and serve until interrupted."""
    parser = argparse.ArgumentParser(prog="python -m simulator",
                                     description="Run the reference Secton API server.")
    parser.add_argument("--config", help="server config TOML (default: the packaged one)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080, help="0 picks a free port")
    parser.add_argument("--stats-file", help="write the ground-truth stats here at shutdown")
    args = parser.parse_args(argv)
    try:
        serve(args.config, args.host, args.port, args.stats_file)
    except HarnessError as error:
        print(f"error: {error}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
