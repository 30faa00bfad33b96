"""``python -m engine.runtime.receiver``: run the reference receiving system."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from engine.runtime.receiver.server import ReferenceReceiver
from engine.runtime.webhook import load_public_key


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m engine.runtime.receiver",
        description="The reference receiving system (a stand-in for the court's case "
                    "management and other systems; not part of the engine).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8089, help="0 picks a free port")
    parser.add_argument("--public-key", required=True,
                        help="the engine's webhook public key (PEM)")
    parser.add_argument("--court", default="京0105", help="court code in case numbers")
    parser.add_argument("--db", default=None,
                        help="SQLite file keeping the records (default: in memory)")
    parser.add_argument("--replay-status", type=int, choices=(200, 409), default=200,
                        help="reply to a key seen before: 200 + stored reply, or 409")
    parser.add_argument("--fail-next", type=int, default=0, metavar="N",
                        help="answer the first N requests with 503 (rehearse outages)")
    parser.add_argument("--quiet", action="store_true", help="do not log each request")
    args = parser.parse_args(argv)

    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO,
                        format="%(asctime)s %(name)s %(message)s")
    receiver = ReferenceReceiver(
        load_public_key(args.public_key), court=args.court, db_path=args.db,
        host=args.host, port=args.port, replay_status=args.replay_status)
    if args.fail_next:
        receiver.fail_next(args.fail_next)
    print(f"jrule reference receiver (stand-in court systems, court {args.court}) "
          f"listening on {receiver.url}", flush=True)
    try:
        receiver.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        receiver.server.server_close()
        receiver.docket.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
