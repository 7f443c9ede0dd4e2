"""The registry of the study's steps, from which ``python -m solargen`` builds its command line.

A step is a plain function with keyword-only arguments, registered with `step` under its command
name, with its help and its argparse arguments declared beside it. A step's defaults are its
function's own (an option without one is required), so they are written once and a test that
calls the function runs what the workflow's command runs. Imports nothing of the package.
"""

from __future__ import annotations

import argparse
import inspect
from dataclasses import dataclass
from typing import Callable

__all__ = ["Arg", "Step", "arg", "group", "step", "registry", "build_parser", "run"]


@dataclass(frozen=True)
class Arg:
    """One argument: ``add_argument``'s arguments less ``default``/``required`` (the signature's)."""

    flags: tuple[str, ...]
    options: dict

    @property
    def dest(self) -> str:
        """The keyword argparse stores it under, as argparse derives it."""
        if "dest" in self.options:
            return self.options["dest"]
        long = [f for f in self.flags if f.startswith("--")]
        return (long or self.flags)[0].lstrip("-").replace("-", "_")

    @property
    def positional(self) -> bool:
        return not self.flags[0].startswith("-")


@dataclass(frozen=True)
class Step:
    name: str  #: the command; "group sub" for a subcommand of a group
    func: Callable
    help: str
    args: tuple[Arg, ...]
    by_hand: bool  #: run by a person, not by a workflow rule
    blas_threads: bool  #: its ``threads`` also sizes NumPy's BLAS pool (see `solargen.cli`)


_STEPS: dict[str, Step] = {}
_GROUPS: dict[str, tuple[str, str]] = {}  # group → (help, dest of its subcommand)


def arg(*flags: str, **options) -> Arg:
    """An argparse argument of a step, e.g. ``arg("--size", type=int, help=...)``."""
    if "default" in options or "required" in options:
        raise TypeError(f"{flags[0]}: the default comes from the step function's signature")
    return Arg(flags, options)


def group(name: str, help: str, dest: str) -> None:
    """A command whose subcommands are steps named ``"<name> <sub>"``."""
    _GROUPS[name] = (help, dest)


def step(name: str, help: str, *args: Arg, by_hand: bool = False, blas_threads: bool = False):
    """Register the decorated function as the command ``name``. Every argument must be a
    keyword-only parameter of the function and every such parameter an argument."""

    def register(func):
        params = {k: p for k, p in inspect.signature(func).parameters.items() if p.kind is p.KEYWORD_ONLY}
        dests = [a.dest for a in args]
        if sorted(dests) != sorted(params) or len(params) != len(inspect.signature(func).parameters):
            raise TypeError(f"step {name}: arguments {sorted(dests)} are not the keyword-only parameters "
                            f"{sorted(params)} of {func.__qualname__}")
        if name in _STEPS:
            raise ValueError(f"step {name} registered twice ({_STEPS[name].func.__module__}, {func.__module__})")
        _STEPS[name] = Step(name, func, help, tuple(args), by_hand, blas_threads)
        return func

    return register


def registry(order: tuple[str, ...] = ()) -> list[Step]:
    """The registered steps; those of the modules in ``order`` first, in that order, each
    module's in the order it defines them."""
    rank = {m: i for i, m in enumerate(order)}
    return sorted(_STEPS.values(), key=lambda s: rank.get(s.func.__module__, len(rank)))


def _add(parser: argparse.ArgumentParser, s: Step) -> None:
    params = inspect.signature(s.func).parameters
    for a in s.args:
        options = dict(a.options)
        default = params[a.dest].default
        if not a.positional:
            if default is inspect.Parameter.empty:
                options["required"] = True
            else:  # a tuple default is handed over as the list argparse itself would parse
                options["default"] = list(default) if isinstance(default, tuple) and "nargs" in options else default
        parser.add_argument(*a.flags, **options)
    parser.set_defaults(_step=s)


def build_parser(prog: str, description: str, order: tuple[str, ...] = ()) -> argparse.ArgumentParser:
    """One subcommand per registered step (steps named ``"g sub"`` under the group ``g``)."""
    p = argparse.ArgumentParser(prog=prog, description=description)
    sub = p.add_subparsers(dest="command", required=True)
    groups = {}
    for s in registry(order):
        where, name = sub, s.name
        if " " in s.name:
            g, name = s.name.split(" ", 1)
            if g not in groups:
                help_, dest = _GROUPS[g]
                groups[g] = sub.add_parser(g, help=help_).add_subparsers(dest=dest, required=True)
            where = groups[g]
        _add(where.add_parser(name, help=s.help), s)
    return p


def run(args: argparse.Namespace):
    """Call the step a parsed command line names with its arguments."""
    s = args._step
    return s.func(**{a.dest: getattr(args, a.dest) for a in s.args})
