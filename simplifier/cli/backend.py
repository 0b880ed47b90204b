"""``--backend local|ray [--address ADDR]``: where a command's training runs (see
``docs/distributed.md``). Shared by ``ablate`` (and ``simplify --ablate``) and ``search``::

    add_backend_arguments(parser)          # when registering the command
    executor = executor_from_args(args)    # None: the in-process default; close it when done

>>> import argparse
>>> p = argparse.ArgumentParser()
>>> add_backend_arguments(p)
>>> executor_from_args(p.parse_args([])) is None
True
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from simplifier.errors import UsageError

if TYPE_CHECKING:
    from simplifier.executor import Executor

# simplifier.executor.BACKENDS, spelled here so that building the parser imports no torch (a
# test checks the two agree).
BACKENDS = ("local", "ray")


def add_backend_arguments(p: argparse._ActionsContainer) -> None:
    """Add ``--backend`` and ``--address`` to a parser or an argument group."""
    p.add_argument(
        "--backend",
        choices=BACKENDS,
        default="local",
        help="where the training runs: local (default; the in-process batched engine) or ray "
        "(Ray tasks, each a whole batch on a worker; needs the [ray] extra)",
    )
    p.add_argument(
        "--address",
        metavar="ADDR",
        default=None,
        help="with --backend ray: 'auto' joins the running Ray cluster, HOST:PORT or "
        "ray://HOST:PORT joins that one; default: start a local Ray instance sized to this "
        "machine",
    )


def executor_from_args(args: argparse.Namespace) -> Executor | None:
    """The executor the options ask for; None for ``--backend local`` (the caller's default).

    Raises :class:`UsageError` (exit 2) for ``--address`` without ``--backend ray``, a missing
    Ray installation, or no cluster at the address.
    """
    from simplifier.executor import make_executor

    backend = getattr(args, "backend", "local")
    address = getattr(args, "address", None)
    if backend != "ray":
        if address is not None:
            raise UsageError("--address needs --backend ray")
        return None
    try:
        return make_executor("ray", address=address)
    except ImportError:
        raise UsageError("--backend ray needs Ray: pip install 'optsimplify[ray]'") from None
    except ConnectionError as e:
        raise UsageError(f"--address {address}: {e}") from None
