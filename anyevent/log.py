"""AnyEvent::Log's levels mapped onto :mod:`logging`.

Perl's nine levels become logging levels of the ``anyevent`` logger (and its
children, the "contexts"): fatal 50, alert 48, crit 45, error 40, warn 30,
note 25, info 20, debug 10, trace 5.  ``ANYEVENT_VERBOSE`` (a level number
0-9 or name; default 4 = error; above 9 counts as 9) sets the ``anyevent``
logger's threshold when the package is imported; 0 silences it; a value that
is neither is reported and ignored.  When it is set and the application has
configured no logging, a stderr handler is added.  Logging at ``fatal`` exits
the program with status 1 after the message is written, as Perl does.
"""

import logging
import os
import sys

__all__ = ["LEVELS", "level_number", "log", "logger", "fatal_exit"]

#: Perl level name -> Python logging level.  Index ``i`` of ``_BY_NUMBER``
#: is Perl's numeric level ``i``.
LEVELS = {
    "fatal": 50, "alert": 48, "crit": 45, "error": 40, "warn": 30,
    "note": 25, "info": 20, "debug": 10, "trace": 5,
}
_ALIASES = {
    "emerg": "fatal", "exit": "fatal", "critical": "crit", "err": "error",
    "warning": "warn", "notice": "note",
}
_BY_NUMBER = (None, "fatal", "alert", "crit", "error", "warn", "note",
              "info", "debug", "trace")

for _name, _lvl in LEVELS.items():
    if logging.getLevelName(_lvl).startswith("Level "):
        logging.addLevelName(_lvl, _name.upper())

#: The root logger of the port; contexts are its children (``anyevent.dns`` ...).
logger = logging.getLogger("anyevent")


def level_number(level):
    """Turn a Perl level (1-9 or a name such as ``"warn"``) into a logging level.

    Raises :class:`ValueError` for anything else.
    """
    if isinstance(level, int) and 1 <= level <= 9:
        return LEVELS[_BY_NUMBER[level]]
    if isinstance(level, str):
        if level.isdigit():
            return level_number(int(level))
        name = _ALIASES.get(level.lower(), level.lower())
        if name in LEVELS:
            return LEVELS[name]
    raise ValueError("unknown AnyEvent log level %r" % (level,))


def fatal_exit():
    """Called after a fatal message; exits with status 1 (``AnyEvent::Log::fatal_exit``)."""
    sys.exit(1)


def log(level, msg, *args, context=None):
    """Log ``msg % args`` at a Perl level (``AE::log``).

    ``context`` names a child logger (``"dns"`` -> ``anyevent.dns``).
    A ``fatal`` message ends the program through :func:`fatal_exit`.
    """
    lvl = level_number(level)
    target = logger.getChild(context) if context else logger
    target.log(lvl, msg, *args)
    if lvl >= LEVELS["fatal"]:
        fatal_exit()


def _verbose_level(verbose):
    """The threshold for an ``ANYEVENT_VERBOSE`` value; 0 silences, above 9 is trace."""
    if verbose.isdigit():
        number = int(verbose)
        if number == 0:
            return logging.CRITICAL + 100
        return level_number(min(number, 9))
    return level_number(verbose or 4)


def _configure_from_env():
    verbose = os.environ.get("ANYEVENT_VERBOSE", "").strip()
    try:
        logger.setLevel(_verbose_level(verbose))
    except ValueError:
        logger.setLevel(level_number(4))
        logger.error("ignoring ANYEVENT_VERBOSE=%r: not a level number (0-9) or name", verbose)
        return
    # An explicit ANYEVENT_VERBOSE asks to see messages even where the
    # application configured no logging at all (Perl prints to stderr).
    if verbose and not logging.getLogger().handlers and not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        logger.addHandler(handler)


_configure_from_env()
