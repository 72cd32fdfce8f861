"""The command line: `python -m mnist_lib COMMAND ...`. Thin: it parses, then calls.

The training options are generated from `TrainConfig`'s fields (their help, their choices, the
recipes' defaults); `TrainConfig.validate` checks the values, so every check lives in one place.
"""

from __future__ import annotations

import argparse
import ast
import sys
from dataclasses import fields
from pathlib import Path

from .config import RECIPES, TrainConfig, option_name, recipe
from .device import DEVICES
from .errors import UserError
from .target import MAX_EPOCHS, MAX_PARAMS, TARGET_ACC


def log(message: str) -> None:
    print(message, flush=True)


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, not usage + line
        print(f"error: {message} (see {self.prog} --help)", file=sys.stderr)
        sys.exit(2)


def recipe_default(name: str) -> str:
    """The default of a config field as the recipes give it: one value, or one per model."""
    values = {model: getattr(cfg, name) for model, cfg in RECIPES.items()}
    if len(set(values.values())) == 1:
        return f"default: {next(iter(values.values()))}"
    return "default: " + ", ".join(f"{v} for {model}" for model, v in values.items())


def add_config_options(p: argparse.ArgumentParser, skip: tuple[str, ...] = ()) -> None:
    """One option per `TrainConfig` field; left out, a field keeps the model's recipe value."""
    for f in fields(TrainConfig):
        if f.name in skip:
            continue
        kind = {"int": int, "float": float}.get(f.type, str)
        default = "default: net" if f.name == "model" else recipe_default(f.name)
        text = f"{f.metadata['help']} ({default})".replace("%", "%%")  # argparse formats with %
        metavar = "{" + ",".join(f.metadata["choices"]) + "}" if f.metadata["choices"] else None
        p.add_argument(
            option_name(f.name),
            type=kind,
            default="net" if f.name == "model" else None,
            metavar=metavar or f.name.upper(),
            help=text,
        )


def add_run_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--device",
        default="auto",
        help=f"{', '.join(DEVICES)} or cuda:N (default: "
        "auto, which picks cuda, then mps, then cpu)",
    )
    p.add_argument(
        "--data-dir",
        type=Path,
        help="where MNIST/raw lives (default: $MNIST_DATA_DIR, "
        "else data/ in a checkout, else a per-user cache folder)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def config_from(args: argparse.Namespace) -> TrainConfig:
    overrides = {f.name: getattr(args, f.name, None) for f in fields(TrainConfig)}
    return recipe(overrides.pop("model"), **overrides)


def cmd_train(args: argparse.Namespace) -> None:
    from .run import fit
    from .target import check_target

    history = fit(
        config_from(args),
        args.out,
        device=args.device,
        data_dir=args.data_dir,
        resume=args.resume,
        force=args.force,
        progress=not args.no_progress,
        log=log,
    )
    log(check_target(history).line())


def cmd_seeds(args: argparse.Namespace) -> None:
    from .experiments.sweep import run_seeds, summary_table, train_commands

    cfg = config_from(args)
    if args.max_epochs < 1:
        raise UserError(f"--max-epochs must be at least 1, got {args.max_epochs}")
    if args.print_commands:
        print("\n".join(train_commands(cfg, args.seeds, args.out)))
        return
    summary = run_seeds(
        cfg,
        args.seeds,
        args.out,
        device=args.device,
        data_dir=args.data_dir,
        progress=not args.no_progress,
        log=log,
        force=args.force,
        max_epochs=args.max_epochs,
    )
    log(summary_table(summary))


def cmd_ablate(args: argparse.Namespace) -> None:
    from .experiments.ablate import ablation_commands, ablation_table, run_ablation

    if args.print_commands:
        print("\n".join(ablation_commands(args.seeds, args.out, only=args.only)))
        return
    results = run_ablation(
        args.seeds,
        args.out,
        only=args.only,
        device=args.device,
        data_dir=args.data_dir,
        progress=not args.no_progress,
        log=log,
    )
    log(ablation_table(results))


def parse_value(text: str) -> object:
    """A papermill parameter value: a Python literal (3, 0.5, 'x', True) or else a plain string."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def cmd_run(args: argparse.Namespace) -> None:
    from .tools.chain import run_chain
    from .tools.paths import need_checkout

    need_checkout("python -m mnist_lib run")
    params = {name: parse_value(value) for name, value in args.p}
    done = run_chain(smoke=args.smoke, parameters=params, only=args.only, log=log)
    log(f"executed {len(done)} notebooks into {done[0].parent}")


def cmd_bench(args: argparse.Namespace) -> None:
    from .experiments.bench import run_bench

    run_bench(
        model=args.model,
        epochs=args.epochs,
        device=args.device,
        repeats=args.repeats,
        data_dir=args.data_dir,
        log=log,
        out=args.out,
        together=args.together,
    )


def cmd_report(args: argparse.Namespace) -> None:
    from .experiments.report import results_table
    from .tools.paths import need_checkout

    need_checkout("python -m mnist_lib report")
    log(results_table())


def cmd_colab(args: argparse.Namespace) -> None:
    from .tools.chain import notebooks
    from .tools.colab import check_repository, point_notebook, point_readme, repository_from_git
    from .tools.paths import need_checkout

    root = need_checkout("python -m mnist_lib colab")
    repository = check_repository(args.repository) if args.repository else repository_from_git()
    for book in notebooks():
        point_notebook(book, repository)
    point_readme(root / "README.md", repository)
    log(
        f"Colab badges and set-up cells for {repository}"
        if repository
        else "no GitHub remote (git remote get-url origin): the notebooks and README carry no "
        "Colab "
        "badge; pass --repository https://github.com/OWNER/NAME to add them"
    )


def cmd_predict(args: argparse.Namespace) -> None:
    from .handwriting import classify_files

    for line in classify_files(args.images, args.model_file, top=args.top):
        log(line)


# What Ctrl-C leaves, per command: where there is something to continue, how.
INTERRUPTED = {
    "train": "the last finished epoch is in the checkpoint; continue with the same command "
    "and --resume",
    "seeds": "finished seeds are kept; run the same command again to continue",
    "ablate": "finished runs are kept; run the same command again to continue",
}


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="python -m mnist_lib",
        description=f"MNIST to {TARGET_ACC} % with fewer than {MAX_PARAMS:,} parameters",
    )
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)

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
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("seeds", help="one run per seed, then a summary over seeds")
    add_config_options(p, skip=("seed",))
    add_run_options(p)
    p.add_argument(
        "--seeds",
        type=int,
        nargs="+",
        default=[0, 1, 2, 3, 4],
        help="the seeds (default: 0 1 2 3 4)",
    )
    p.add_argument(
        "--out", type=Path, required=True, help="sweep folder (a seed-N run folder each)"
    )
    p.add_argument(
        "--max-epochs",
        type=int,
        default=MAX_EPOCHS,
        help=f"epoch budget of the target check (default: {MAX_EPOCHS})",
    )
    p.add_argument("--force", action="store_true", help="retrain seeds that already finished")
    p.add_argument(
        "--print-commands",
        action="store_true",
        help="print one train command per unfinished seed instead of training",
    )
    p.set_defaults(func=cmd_seeds)

    p = sub.add_parser(
        "ablate", help="take one part of the recipe away at a time (validation split)"
    )
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="(default: 0 1 2)")
    p.add_argument("--out", type=Path, required=True, help="one folder per variant")
    p.add_argument("--only", nargs="+", metavar="VARIANT", help="run only these variants")
    p.add_argument(
        "--print-commands",
        action="store_true",
        help="print one train command per unfinished run instead of training",
    )
    add_run_options(p)
    p.set_defaults(func=cmd_ablate)

    p = sub.add_parser("run", help="execute the notebook chain with papermill")
    p.add_argument(
        "--smoke", action="store_true", help="tiny data, one epoch, outputs under smoke/"
    )
    p.add_argument(
        "-p",
        nargs=2,
        action="append",
        default=[],
        metavar=("NAME", "VALUE"),
        help="set a notebook parameter, e.g. -p SEED 2",
    )
    p.add_argument(
        "--only",
        nargs="+",
        metavar="NOTEBOOK",
        help="run only these notebooks, by number or name (e.g. --only 04 05)",
    )
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("report", help="print the README's results table from results/")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("bench", help="the usual DataLoader pipeline vs this library, side by side")
    p.add_argument("--model", default="net", help="(default: net)")
    p.add_argument(
        "--epochs", type=int, default=2, help="epochs per pipeline and round (default: 2)"
    )
    p.add_argument("--repeats", type=int, default=1, help="alternating rounds (default: 1)")
    p.add_argument("--device", default="auto", help="(default: auto)")
    p.add_argument("--data-dir", type=Path)
    p.add_argument("--out", type=Path, help="also write the figures to this JSON file")
    p.add_argument(
        "--together",
        type=int,
        default=5,
        help="on a GPU, also time this many seeds trained together against one by one (default: 5)",
    )
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("colab", help="write the Colab badges and set-up cells for this repository")
    p.add_argument(
        "--repository",
        help="https://github.com/OWNER/NAME (default: the address of "
        "git remote origin; none there: no badges)",
    )
    p.set_defaults(func=cmd_colab)

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


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        detail = INTERRUPTED.get(args.command)
        print("interrupted" + (f": {detail}" if detail else ""), file=sys.stderr)
        return 130
    return 0
