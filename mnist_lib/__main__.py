"""The course's command line: `python -m mnist_lib train|predict ...`. It parses, then calls.

The training options are generated from `TrainConfig`'s fields (their help, their choices, the
recipes' defaults); `TrainConfig.validate` checks the values, so every check lives in one place.
The lab's commands (seed sweeps, the ablation, the notebook chain, ...) are
`python -m mnist_lib.lab`.
"""

import argparse
import sys
from collections.abc import Callable
from dataclasses import fields
from functools import partial
from pathlib import Path

try:  # Ctrl-C while torch loads is one line too
    from .config import TrainConfig, UserError, recipe
    from .device import DEVICES
    from .fit import fit
    from .record import MAX_PARAMS, TARGET_ACC, target_line
except KeyboardInterrupt:
    print("interrupted", file=sys.stderr)
    sys.exit(130)

log = partial(print, flush=True)


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, not usage + line
        print(f"error: {message} (see {self.prog} --help)", file=sys.stderr)
        sys.exit(2)


def option_name(name: str) -> str:
    return "--" + name.replace("_", "-")


def add_config_options(p: argparse.ArgumentParser, skip: tuple[str, ...] = ()) -> None:
    """One option per `TrainConfig` field; left out, a field keeps the model's recipe value."""
    for f in fields(TrainConfig):
        if f.name in skip:
            continue
        default = "net" if f.name == "model" else "the model's recipe"
        text = f"{f.metadata['help']} (default: {default})".replace("%", "%%")  # for argparse
        metavar = "{" + ",".join(f.metadata["choices"]) + "}" if f.metadata["choices"] else None
        p.add_argument(
            option_name(f.name),
            type=f.type,
            default="net" if f.name == "model" else None,
            metavar=metavar or f.name.upper(),
            help=text,
        )


def add_run_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--device",
        default="auto",
        help=f"{', '.join(DEVICES)} or cuda:N (default: auto: cuda, else mps, else cpu)",
    )
    p.add_argument(
        "--data-dir",
        type=Path,
        help="where MNIST/raw lives (default: $MNIST_DATA_DIR, else data/ in a checkout, else a "
        "per-user cache folder)",
    )


def config_from(args: argparse.Namespace) -> TrainConfig:
    overrides = {f.name: getattr(args, f.name, None) for f in fields(TrainConfig)}
    return recipe(overrides.pop("model"), **overrides)


def add_train_command(sub: argparse._SubParsersAction, func: Callable) -> argparse.ArgumentParser:
    p = sub.add_parser("train", help="train one model into a run folder (history.json, model.pt)")
    add_config_options(p)
    add_run_options(p)
    p.add_argument("--out", type=Path, required=True, help="the run folder")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run")
    p.add_argument(
        "--force",
        action="store_true",
        help="replace a run already in --out (kept until the new one finishes)",
    )
    p.set_defaults(func=func)
    return p


def cmd_train(args: argparse.Namespace) -> None:
    history = fit(config_from(args), args.out, device=args.device, data_dir=args.data_dir,
                  resume=args.resume, force=args.force, log=log)  # fmt: skip
    log(target_line(history))


def cmd_predict(args: argparse.Namespace) -> None:
    from .handwriting import classify_files

    for line in classify_files(args.images, args.model_file, top=args.top):
        log(line)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="python -m mnist_lib",
        description=f"MNIST to {TARGET_ACC} % with fewer than {MAX_PARAMS:,} parameters "
        "(the lab's commands: python -m mnist_lib.lab --help)",
    )
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    add_train_command(sub, cmd_train)
    p = sub.add_parser("predict", help="classify your own digit images with a trained model")
    p.add_argument("images", nargs="+", type=Path, help="image files (PNG, JPEG, ...)")
    p.add_argument(
        "--model-file",
        type=Path,
        default=None,
        help="a run folder or its model.pt (default: results/net of the checkout)",
    )
    p.add_argument("--top", type=int, default=3, help="classes to show per image (default: 3)")
    p.set_defaults(func=cmd_predict)
    return parser


def main(argv: list[str] | None = None, parser: argparse.ArgumentParser | None = None) -> int:
    """Run a command; bad input and Ctrl-C end in one line (exit status 2 and 130)."""
    args = (parser or build_parser()).parse_args(argv)
    try:
        args.func(args)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as stop:  # with what it leaves, where a run says so
        print("interrupted" + (f": {stop}" if str(stop) else ""), file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
