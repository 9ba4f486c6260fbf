"""The OpenBMC stand-in as a process of its own, for scripts/hostaccounts-clients.

    python ha_openbmc_serve.py --address unix:path=/tmp/x/system_bus_socket \\
        [--host-users]

Owns xyz.openbmc_project.User.Manager on the given bus until SIGTERM or
SIGINT. With --host-users it runs useradd/userdel as phosphor-user-manager
does, which it refuses unless /etc is a mount of its own (the namespace
sandbox with a copy of /etc), so the machine's users are never touched.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys

from ha_openbmc_standin import StandIn

_LOGGER = logging.getLogger("ha_openbmc_serve")


def etc_is_private() -> bool:
    """Whether /etc is a mount point here (the sandbox's bind-mounted copy)."""
    # A bind mount on the same file system fools os.path.ismount.
    with open("/proc/self/mountinfo") as mounts:
        return any(line.split()[4] == "/etc" for line in mounts)


async def serve(address: str, host_users: bool) -> None:
    """Run the stand-in until a stop signal."""
    standin = StandIn(address, host_users=host_users)
    await standin.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    _LOGGER.info("OpenBMC stand-in on %s (host users: %s)", address, host_users)
    await stop.wait()
    await standin.stop()


def main() -> int:
    """Parse the command line and serve."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--address", required=True, help="D-Bus address to serve on")
    parser.add_argument(
        "--host-users", action="store_true", help="create real users (sandbox only)"
    )
    args = parser.parse_args()
    logging.basicConfig(
        level=logging.INFO, format="%(levelname)s %(name)s: %(message)s"
    )
    if args.host_users and not etc_is_private():
        _LOGGER.error(
            "Refusing --host-users: /etc is not a private mount; run inside "
            "'unshare --mount' with a copy of /etc bind-mounted"
        )
        return 2
    asyncio.run(serve(args.address, args.host_users))
    return 0


if __name__ == "__main__":
    sys.exit(main())
