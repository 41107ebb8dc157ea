"""``python -m autoretrain.serving [--host H] [--port P] [--config autoretrain.json]``."""

from __future__ import annotations

import argparse
import logging
import sys

from autoretrain.config import load_settings
from autoretrain.errors import AutoRetrainError
from autoretrain.serving.server import run


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m autoretrain.serving", description=__doc__)
    parser.add_argument("--host", help="bind address (default: settings.serving_host)")
    parser.add_argument("--port", type=int, help="port (default: settings.serving_port)")
    parser.add_argument("--config", help="settings file (default: $AUTORETRAIN_CONFIG or autoretrain.json)")
    args = parser.parse_args(argv)
    try:
        run(load_settings(args.config), host=args.host, port=args.port)
    except AutoRetrainError as err:  # bad settings, a database behind the code: one line, the error's exit code
        logging.getLogger("autoretrain.serving").error("%s", err)
        sys.exit(err.exit_code)


if __name__ == "__main__":
    main()
