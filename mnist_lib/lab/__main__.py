"""The lab's command line: `python -m mnist_lib.lab COMMAND ...`. It parses, then calls.

`train` is the course's command with the lab's models and a --fast flag; the other commands run
the experiments and the notebook chain. Bad input is one line and exit status 2, as in the
course's command line (`mnist_lib.__main__`), whose options and checks it reuses.
"""

import argparse
import ast
import sys
from pathlib import Path

try:  # Ctrl-C while torch loads is one line too
    from ..__main__ import (
        Parser,
        add_config_options,
        add_run_options,
        add_train_command,
        config_from,
        log,
        main,
    )
    from ..config import UserError
    from ..record import MAX_EPOCHS, target_line
    from .experiments.variants import register
except KeyboardInterrupt:
    print("interrupted", file=sys.stderr)
    sys.exit(130)

register()  # the lab's models, for train and seeds
# What Ctrl-C leaves in a command that trains several runs.
AGAIN = "finished runs are kept, and the one in training goes on from its last finished epoch "
AGAIN += "(from the start if it had finished none): run the same command again to continue"


def cmd_train(args: argparse.Namespace) -> None:
    from ..fit import fit
    from .speed.together import fit_fast

    train = fit_fast if args.fast else fit
    history = train(config_from(args), args.out, args.device, data_dir=args.data_dir,
                    resume=args.resume, force=args.force, log=log)  # fmt: skip
    log(target_line(history))


def cmd_seeds(args: argparse.Namespace) -> None:
    from .experiments.sweep import run_seeds, summary_table, train_commands

    cfg = config_from(args)
    if args.max_epochs < 1:
        raise UserError(f"--max-epochs must be at least 1, got {args.max_epochs}")
    if args.print_commands:
        print("\n".join(train_commands(cfg, args.seeds, args.out)))
        return
    try:
        summary = run_seeds(cfg, args.seeds, args.out, args.device, args.data_dir, log,
                            args.max_epochs, args.force, fast=args.fast)  # fmt: skip
    except KeyboardInterrupt:
        raise KeyboardInterrupt(AGAIN) from None
    log(summary_table(summary))


def cmd_ablate(args: argparse.Namespace) -> None:
    from .experiments.ablate import ablation_commands, ablation_table, run_ablation

    if args.print_commands:
        print("\n".join(ablation_commands(args.seeds, args.out, only=args.only)))
        return
    try:
        run_ablation(args.seeds, args.out, args.only, args.device, args.data_dir, log, args.fast)
    except KeyboardInterrupt:
        raise KeyboardInterrupt(AGAIN) from None
    log(ablation_table(args.out))


def parse_value(text: str) -> object:
    """A papermill parameter value: a Python literal (3, 0.5, 'x', True) or else a plain string."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def cmd_run(args: argparse.Namespace) -> None:
    from .notebooks.chain import run_chain
    from .paths import need_checkout

    need_checkout("python -m mnist_lib.lab run")
    params = {name: parse_value(value) for name, value in args.p}
    done = run_chain(smoke=args.smoke, parameters=params, only=args.only, log=log)
    log(f"executed {len(done)} notebooks into {done[0].parent}")


def cmd_bench(args: argparse.Namespace) -> None:
    from .experiments.bench import run_bench

    run_bench(args.model, args.epochs, args.device, args.repeats, args.data_dir, log, args.out,
              args.together, args.compare)  # fmt: skip


def cmd_report(args: argparse.Namespace) -> None:
    from .experiments.report import course_table, results_table
    from .paths import need_checkout

    need_checkout("python -m mnist_lib.lab report")
    log(results_table() if args.all else course_table())


def cmd_colab(args: argparse.Namespace) -> None:
    from .notebooks.chain import notebooks
    from .notebooks.colab import check_repository, point_notebook, point_readme, repository_from_git
    from .paths import need_checkout

    root = need_checkout("python -m mnist_lib.lab colab")
    repository = check_repository(args.repository) if args.repository else repository_from_git()
    for book in notebooks():
        point_notebook(book, repository)
    point_readme(root / "README.md", repository)
    log(
        f"Colab badges and set-up cells for {repository}"
        if repository
        else "no GitHub remote (git remote get-url origin): the notebooks and README carry no "
        "Colab badge; pass --repository https://github.com/OWNER/NAME to add them"
    )


def add_fast(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--fast",
        action="store_true",
        help="the same computation, faster: ghost batches on parallel threads on a CPU, the "
        "step as one CUDA graph on a GPU",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="python -m mnist_lib.lab",
        description="the lab: seed sweeps, the ablation, the benchmark, the notebook chain",
    )
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    add_fast(add_train_command(sub, cmd_train))

    p = sub.add_parser("seeds", help="one run per seed, then a summary over every seed in --out")
    add_config_options(p, skip=("seed",))
    add_run_options(p)
    add_fast(p)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4],
                   help="the seeds (default: 0 1 2 3 4)")  # fmt: skip
    p.add_argument("--out", type=Path, required=True, help="sweep folder (a seed-N folder each)")
    p.add_argument("--max-epochs", type=int, default=MAX_EPOCHS,
                   help=f"epoch budget of the target check (default: {MAX_EPOCHS})")  # fmt: skip
    p.add_argument("--force", action="store_true", help="retrain seeds that already finished")
    p.add_argument(
        "--print-commands",
        action="store_true",
        help="print one train command per unfinished seed instead of training",
    )
    p.set_defaults(func=cmd_seeds)

    p = sub.add_parser("ablate", help="take one part of the recipe away at a time (validation)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="(default: 0 1 2)")
    p.add_argument("--out", type=Path, required=True, help="one folder per variant")
    p.add_argument("--only", nargs="+", metavar="VARIANT", help="run only these variants")
    p.add_argument(
        "--print-commands",
        action="store_true",
        help="print one train command per unfinished run instead of training",
    )
    add_run_options(p)
    add_fast(p)
    p.set_defaults(func=cmd_ablate)

    p = sub.add_parser("run", help="execute the notebook chain with papermill")
    p.add_argument("--smoke", action="store_true", help="tiny data, one epoch, files in smoke/")
    p.add_argument("-p", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                   help="set a notebook parameter, e.g. -p SEED 2")  # fmt: skip
    p.add_argument(
        "--only",
        nargs="+",
        metavar="NOTEBOOK",
        help="run only these notebooks, by number or name (e.g. --only 04 05)",
    )
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("report", help="print the README's results table from results/")
    p.add_argument("--all", action="store_true", help="every committed sweep, one row each")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("bench", help="time ways of training side by side, alternating")
    p.add_argument("--model", default="net", help="(default: net)")
    p.add_argument("--epochs", type=int, default=2, help="epochs per way and round (default: 2)")
    p.add_argument("--repeats", type=int, default=1, help="alternating rounds (default: 1)")
    p.add_argument("--device", default="auto", help="(default: auto)")
    p.add_argument("--data-dir", type=Path)
    p.add_argument("--out", type=Path, help="also write the figures to this JSON file")
    p.add_argument("--together", type=int, default=5,
                   help="on a GPU, also time this many seeds together (default: 5)")  # fmt: skip
    p.add_argument("--compare", choices=("usual", "fast"), default="usual",
                   help="usual: the DataLoader pipeline against the course's loop; fast: the "
                   "course's loop against --fast (default: usual)")  # fmt: skip
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("colab", help="write the Colab badges and set-up cells")
    p.add_argument("--repository", help="https://github.com/OWNER/NAME (default: the address "
                   "of git remote origin; none there: no badges)")  # fmt: skip
    p.set_defaults(func=cmd_colab)
    return parser


if __name__ == "__main__":
    sys.exit(main(parser=build_parser()))
