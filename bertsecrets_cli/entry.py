"""The ``bertsecrets`` console script: signal handling first, then the (heavier) command-line app."""

from __future__ import annotations

import sys


def main() -> None:
    """SIGTERM handling starts before anything else is imported, so a stop during start-up exits 75 too."""
    from bertsecrets_cli.errors import EXIT_INTERRUPTED, Interrupted
    from bertsecrets_cli.jobs.signals import stop_on_sigterm

    stop_on_sigterm()
    try:
        from bertsecrets_cli.cli.app import app

        app()
    except Interrupted as e:  # subcommands report their own; this is a stop before one was running
        print(f"bertsecrets: {e}", file=sys.stderr)
        sys.exit(EXIT_INTERRUPTED)
    except KeyboardInterrupt:
        print("bertsecrets: interrupted", file=sys.stderr)
        sys.exit(EXIT_INTERRUPTED)
    except Exception as e:
        # a stop raised inside an import's class body comes back wrapped (RuntimeError from __set_name__)
        from bertsecrets_cli.cli.common import _signal_stop_inside

        stop = _signal_stop_inside(e)
        if stop is None:
            raise
        print(f"bertsecrets: {stop}", file=sys.stderr)
        sys.exit(EXIT_INTERRUPTED)
