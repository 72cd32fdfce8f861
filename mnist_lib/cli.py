"""The command line: `python -m mnist_lib {train,seeds,ablate,run,report,bench,colab} ...`. Thin: it parses, then calls."""

from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path

from .errors import UserError


def log(message: str) -> None:
    print(message, flush=True)


def whole(name: str, minimum: int):
    """An argparse type: a whole number >= minimum, with a message that says so."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be a whole number, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{name} must be at least {minimum}, got {value}")
        return value
    return parse


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"learning rate must be a number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"learning rate must be > 0, got {text}")
    return value


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, not usage + line
        print(f"error: {message} (see {self.prog} --help)", file=sys.stderr)
        sys.exit(2)


def add_training_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default="net", help="net (the seed's 13,154 params) or tiny")
    p.add_argument("--epochs", type=whole("epochs", 1), help="default: the model's recipe")
    p.add_argument("--batch-size", type=whole("batch size", 1))
    p.add_argument("--shards", type=whole("shards", 1), help="BatchNorm batches per step, run in parallel on a CPU")
    p.add_argument("--lr", type=positive_float, help="peak learning rate")
    p.add_argument("--dropout", type=float)
    p.add_argument("--ema", type=float, help="EMA decay per step, 0 = off")
    p.add_argument("--schedule", choices=["onecycle", "constant"])
    p.add_argument("--rotate", type=float, help="max rotation in degrees")
    p.add_argument("--shift", type=float, help="max shift in pixels")
    p.add_argument("--precision", choices=["auto", "bf16", "fp32"])
    p.add_argument("--limit-train", type=whole("--limit-train", 1), help="use only the first N training images")
    p.add_argument("--limit-test", type=whole("--limit-test", 1), help="use only the first N test images")
    p.add_argument("--device", default="auto", help="auto (cuda, mps, cpu), cpu, cuda or mps")
    p.add_argument("--data-dir", type=Path, help="where MNIST/raw lives (default: data/ or $MNIST_DATA_DIR)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def config_from(args: argparse.Namespace, seed: int | None = None):
    from .recipes import recipe

    return recipe(args.model, epochs=args.epochs, batch_size=args.batch_size, shards=args.shards, lr=args.lr,
                  dropout=args.dropout,
                  ema=args.ema, schedule=args.schedule, rotate=args.rotate, shift=args.shift,
                  precision=args.precision, limit_train=args.limit_train, limit_test=args.limit_test, seed=seed)


def cmd_train(args: argparse.Namespace) -> None:
    from .target import check_target
    from .train import fit

    history = fit(config_from(args, args.seed), args.out, device=args.device, data_dir=args.data_dir,
                  resume=args.resume, force=args.force, progress=not args.no_progress, log=log)
    log(check_target(history).line())


def cmd_seeds(args: argparse.Namespace) -> None:
    from .sweep import run_seeds, summary_table
    from .target import MAX_EPOCHS

    cfg = config_from(args)
    summary = run_seeds(cfg, args.seeds, args.out, device=args.device, data_dir=args.data_dir,
                        progress=not args.no_progress, log=log, max_epochs=args.max_epochs or MAX_EPOCHS)
    log(summary_table(summary))


def parse_value(text: str):
    """A papermill parameter value: a Python literal (3, 0.5, 'x', True) or else a plain string."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def cmd_run(args: argparse.Namespace) -> None:
    from .chain import run_chain
    from .files import read_json
    from .paths import RESULTS_DIR, resolve
    from .target import check_target

    params = {name: parse_value(value) for name, value in args.p}
    done = run_chain(smoke=args.smoke, parameters=params, only=args.only, log=log)
    log(f"executed {len(done)} notebooks into {done[0].parent}")
    if not args.smoke and any(book.name.startswith("03-") for book in done):
        run_dir = resolve(params.get("RUN_DIR", RESULTS_DIR / "net"))
        log(check_target(read_json(run_dir / "history.json")).line())


def cmd_bench(args: argparse.Namespace) -> None:
    from .bench import run_bench

    run_bench(model=args.model, epochs=args.epochs, device=args.device, repeats=args.repeats,
              data_dir=args.data_dir, log=log)


def cmd_ablate(args: argparse.Namespace) -> None:
    from .ablate import ablation_table, run_ablation

    results = run_ablation(args.seeds, args.out, only=args.only, device=args.device, data_dir=args.data_dir,
                           progress=not args.no_progress, log=log)
    log(ablation_table(results))


def cmd_report(args: argparse.Namespace) -> None:
    from .report import results_table

    log(results_table())


def cmd_colab(args: argparse.Namespace) -> None:
    from .chain import notebooks
    from .colab import REPOSITORY, add_colab_cells, check_repository, point_readme
    from .paths import REPO_ROOT

    repository = check_repository(args.repository or REPOSITORY)
    for book in notebooks():
        add_colab_cells(book, repository)
        log(f"{book.name}: Colab badge and set-up cell for {repository}")
    point_readme(REPO_ROOT / "README.md", repository)
    log(f"README.md: Colab links for {repository}")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="python -m mnist_lib", description="MNIST under 15k parameters: train, seeds, ablate, run, bench")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)

    p = sub.add_parser("train", help="train one model and write history.json and model.pt")
    add_training_options(p)
    p.add_argument("--seed", type=whole("seed", 0), default=1)
    p.add_argument("--out", type=Path, required=True, help="run directory")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run from its checkpoint")
    p.add_argument("--force", action="store_true", help="overwrite a run that already exists")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("seeds", help="train one run per seed and summarise over seeds")
    add_training_options(p)
    p.add_argument("--seeds", type=whole("seed", 0), nargs="+", default=[0, 1, 2, 3, 4])
    p.add_argument("--out", type=Path, required=True, help="sweep directory (one seed-N folder per seed)")
    p.add_argument("--max-epochs", type=whole("--max-epochs", 1), help="epoch budget for the target check")
    p.set_defaults(func=cmd_seeds)

    p = sub.add_parser("run", help="execute the notebook chain with papermill")
    p.add_argument("--smoke", action="store_true", help="tiny data, one epoch, outputs under smoke/")
    p.add_argument("-p", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                   help="override a notebook parameter, e.g. -p EPOCHS 5")
    p.add_argument("--only", nargs="+", metavar="NOTEBOOK",
                   help="run only these notebooks, by number or name (e.g. --only 04 05), in order")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("ablate", help="take one part of the recipe away at a time, over several seeds")
    p.add_argument("--seeds", type=whole("seed", 0), nargs="+", default=[0, 1, 2])
    p.add_argument("--out", type=Path, required=True, help="one folder per variant, one seed-N folder per seed")
    p.add_argument("--only", nargs="+", metavar="VARIANT", help="run only these variants")
    p.add_argument("--device", default="auto")
    p.add_argument("--data-dir", type=Path)
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_ablate)

    p = sub.add_parser("report", help="print the README's results table from results/sweep-*/summary.json")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("bench", help="the usual DataLoader pipeline vs this library's path, side by side")
    p.add_argument("--model", default="net")
    p.add_argument("--epochs", type=whole("epochs", 1), default=2, help="epochs per pipeline")
    p.add_argument("--repeats", type=whole("repeats", 1), default=1, help="alternating rounds")
    p.add_argument("--device", default="auto")
    p.add_argument("--data-dir", type=Path)
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("colab", help="put the Colab badge and set-up cell at the top of every notebook")
    p.add_argument("--repository", help="https://github.com/OWNER/NAME (default: REPOSITORY in mnist_lib/colab.py)")
    p.set_defaults(func=cmd_colab)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: the last finished epoch is in the checkpoint; continue with --resume", file=sys.stderr)
        return 130
    return 0
