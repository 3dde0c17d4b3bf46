"""``dask-flows``: run, validate and list flows from the command line.

Exit codes: 0 success, 2 bad input (config, data, paths: one line naming the culprit, no
traceback), 1 any other failure (one line; ``--traceback`` shows the rest), 130 interrupted
(``docs/semantics.md``, "Errors and exit codes").
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import traceback
import types
from collections.abc import Sequence
from typing import Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel

from flows import config as config_module
from flows import registry
from pipelines.errors import InputError

EPILOG = """examples:
  dask-flows run configs/quickstart.yaml
  dask-flows run configs/ticks.yaml --set steps.1.lookahead.horizon=60s --scheduler tcp://host:8786
  dask-flows validate configs/compare.yaml
  dask-flows list"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dask-flows", description="Distributed batch pipelines on Dask.", epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="{run,validate,list}")
    run = sub.add_parser("run", help="run a flow from a YAML config")
    run.add_argument("config", help="path of a YAML run config")
    run.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                     help="override a config value (dotted key, YAML value); repeatable")
    run.add_argument("--scheduler", help="address of an existing Dask scheduler "
                     "(default: $DASK_SCHEDULER_ADDRESS, then cluster.address, then a LocalCluster)")
    run.add_argument("--dry-run", action="store_true", help="validate and build the graph; compute nothing")
    run.add_argument("--report", metavar="FILE.html", help="write a Dask performance report")
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    run.add_argument("--traceback", action="store_true", help="show tracebacks of unexpected errors")
    validate = sub.add_parser("validate", help="check a config without running it")
    validate.add_argument("config")
    validate.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    sub.add_parser("list", help="list the flows and steps with their parameters and defaults")
    return parser


def _kind(annotation: Any) -> str:
    """A readable type: ``'auto' | 'cpu' | 'cuda'``, ``int | None``, ``list[str]``."""
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Literal:
        return " | ".join(repr(a) for a in args)
    if origin in (Union, types.UnionType):
        return " | ".join(_kind(a) for a in args)
    if origin in (list, dict):
        return f"{origin.__name__}[{', '.join(_kind(a) for a in args)}]" if args else origin.__name__
    if annotation is type(None):
        return "None"
    return getattr(annotation, "__name__", str(annotation))


def _fields(model: type[BaseModel], indent: str = "    ", only: Sequence[str] | None = None) -> list[str]:
    lines = []
    for name, info in model.model_fields.items():
        if name == "format" or (only is not None and name not in only):
            continue
        default = "required" if info.is_required() else f"default {info.get_default(call_default_factory=True)!r}"
        note = f"; {info.description}" if info.description else ""
        lines.append(f"{indent}{name}: {_kind(info.annotation)} ({default}{note})")
    return lines


def _formats(title: str, models: Sequence[type[BaseModel]]) -> list[str]:
    """An input section: each ``format:`` and its fields."""
    out = [title]
    for model in models:
        out.append(f"  {get_args(model.model_fields['format'].annotation)[0]}:")
        out += _fields(model)
    return out


def list_text() -> str:
    """What ``dask-flows list`` prints: flows, inputs and steps (from the registries), parameters, defaults."""
    c = config_module
    out = ["flows:", *(f"  {name}: {spec.description}" for name, spec in registry.flows().items()), ""]
    out += _formats("table inputs (input.format):", (c.ParquetInput, c.CsvInput, c.SyntheticTicks))
    out += ["", "table steps (steps: [- NAME: {params}]):"]
    for name, spec in registry.steps().items():
        out.append(f"  {name}: {spec.description}")
        out += _fields(spec.params)
    out += ["", "summary: (table flows)", *_fields(c.SummaryConfig, "  ")]
    out += ["table flows also:", *_fields(c.TableFlowConfig, "  ", only=("hold_partitions",)), ""]
    out += _formats("compare inputs (input.format):", (c.NpyFolderInput, c.NpzInput, c.ZarrInput, c.SyntheticMatrices))
    out += ["compare: (compare flows)", *_fields(c.CompareOptions, "  "), ""]
    out += ["cluster:", *_fields(c.ClusterConfig, "  "), "output:", *_fields(c.OutputConfig, "  ")]
    return "\n".join(out)


def _quiet_logs() -> None:
    """distributed logs a lot on connection failures and shutdown; the CLI prints one line instead."""
    for name in ["distributed", "tornado", "asyncio", *logging.root.manager.loggerDict]:
        if name.split(".")[0] in ("distributed", "tornado", "asyncio"):
            logging.getLogger(name).setLevel(logging.CRITICAL)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``dask-flows`` console script."""
    args = build_parser().parse_args(argv)
    try:
        if args.command == "list":
            print(list_text())
            return 0
        if args.command == "validate":
            cfg = config_module.load_config(args.config, args.overrides)
            print(f"{args.config}: valid {cfg.flow} flow")
            return 0
        from flows.runner import run

        _quiet_logs()

        result = run(
            args.config, overrides=args.overrides, scheduler=args.scheduler, dry_run=args.dry_run,
            report=args.report, progress=not args.no_progress and sys.stdout.isatty(),
        )
        print(repr(result))
        return 0
    except InputError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `dask-flows list | head`: the reader left, nothing to say
        sys.stderr.close()
        return 141
    except KeyboardInterrupt:
        print("interrupted: nothing was published", file=sys.stderr)
        return 130
    except Exception as error:  # one line for users; --traceback for developers
        if getattr(args, "traceback", False) or os.environ.get("DASK_FLOWS_TRACEBACK"):
            traceback.print_exc()
        message = " ".join(str(error).split()) or type(error).__name__
        if "nothing was published" not in message:
            message += " (nothing was published; --traceback for details)"
        print(f"error: {type(error).__name__}: {message}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
