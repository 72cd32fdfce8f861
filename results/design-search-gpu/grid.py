"""The design search on a GPU, where a row can afford 8 or 16 seeds instead of the CPU's 2-3.

Each row is a design and its recipe (TinyNet's search recipe with the changes below), trained on
the validation split (the last 10,000 training images), its seeds together in one recorded step
(`seeds --device cuda`). A round trains its rows on seeds 0-7, in the order below, until
``--budget`` seconds have passed; then the ``--deepen`` best rows in the folder (every round's,
by validation last-5 minimum, mean over seeds) get seeds 8-15. Then this script, not a person,
picks the row with the best mean over its seeds among the deepened ones (among all, without
deepening) and runs only that row's test sweep on seeds 0 to ``--test-seeds`` - 1: the choice
never sees the test set. Finished seeds in the folder are kept, not retrained.

    python results/design-search-gpu/grid.py OUT --round 4 --deepen 0 --test-seeds 10
    python results/design-search-gpu/grid.py OUT --round 5 --deepen 3 --test-seeds 20

writes OUT/<row>/seed-N and OUT/<row>/summary.json per row, OUT/picked-round-N.json, and the
picked row's test sweep in OUT/test-<row>/.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

from mnist_lib.config import TrainConfig
from mnist_lib.data import load_mnist
from mnist_lib.experiments.designs import search_recipe
from mnist_lib.experiments.sweep import load_summary, run_seeds, summary_table
from mnist_lib.files import write_json

# Round -> row name -> (design, recipe changes). Round 4: the CPU table's leaders, more seeds.
ROUNDS: dict[int, dict[str, tuple[str, dict]]] = {
    4: {
        "design-w-lr02": ("design-w", {"lr": 0.2}),  # micro19's design and recipe
        "design-ws-lr02": ("design-ws", {"lr": 0.2}),
        "design-w-lr015": ("design-w", {"lr": 0.15}),
        "design-w-lr03": ("design-w", {"lr": 0.3}),
        "design-h-lr02": ("design-h", {"lr": 0.2}),
        "design-w-lr02-wd5e-5": ("design-w", {"lr": 0.2, "weight_decay": 5e-5}),
        "design-p-lr02": ("design-p", {"lr": 0.2}),
        "design-w-lr02-ema998": ("design-w", {"lr": 0.2, "ema": 0.998}),
        "design-ws-lr03": ("design-ws", {"lr": 0.3}),
        "design-w-b64-lr01": ("design-w", {"lr": 0.1, "batch_size": 64}),
    },
    # Round 5: round 4's pick took twice the steps (batch 64); more steps, and its neighbours.
    5: {
        "design-w-b64-lr005": ("design-w", {"lr": 0.05, "batch_size": 64}),
        "design-w-b64-lr015": ("design-w", {"lr": 0.15, "batch_size": 64}),
        "design-w-b64-lr01-wd5e-5": (
            "design-w", {"lr": 0.1, "batch_size": 64, "weight_decay": 5e-5}
        ),
        "design-w-b64-lr01-ema9995": ("design-w", {"lr": 0.1, "batch_size": 64, "ema": 0.9995}),
        "design-ws-b64-lr01": ("design-ws", {"lr": 0.1, "batch_size": 64}),
        "design-h-b64-lr01": ("design-h", {"lr": 0.1, "batch_size": 64}),
        "design-w-b32-lr005": ("design-w", {"lr": 0.05, "batch_size": 32}),
    },
}
ROWS = {name: row for rows in ROUNDS.values() for name, row in rows.items()}
FIRST_SEEDS, DEEP_SEEDS = list(range(8)), list(range(16))


def row_config(name: str, **overrides: int) -> TrainConfig:
    model, changes = ROWS[name]
    return replace(search_recipe(model), **changes, **overrides).validate()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    parser.add_argument("--round", type=int, choices=sorted(ROUNDS), required=True)
    parser.add_argument("--budget", type=float, default=180.0, help="seconds for new rows")
    parser.add_argument("--deepen", type=int, default=0, help="best rows that get seeds 8-15")
    parser.add_argument("--test-seeds", type=int, default=10)
    args = parser.parse_args()
    data = load_mnist()

    def sweep(cfg: TrainConfig, seeds: list[int], out: Path) -> dict:
        t0 = time.perf_counter()
        s = run_seeds(
            cfg, seeds, out, device="cuda", progress=False, data=data, max_epochs=cfg.epochs,
            log=lambda line: None,
        )  # fmt: skip
        print(f"{summary_table(s)}\n{out.name}: {time.perf_counter() - t0:.1f} s\n", flush=True)
        return s

    start = time.perf_counter()
    for name in ROUNDS[args.round]:
        if time.perf_counter() - start > args.budget:
            print(f"{name}: not run, the budget of {args.budget:.0f} s is spent\n")
            continue
        sweep(row_config(name), FIRST_SEEDS, args.out / name)

    def ranking() -> list[str]:
        done = [n for n in ROWS if (args.out / n / "summary.json").exists()]
        return sorted(done, key=lambda n: -load_summary(args.out / n)["min_last"]["mean"])

    candidates = ranking()[: args.deepen] if args.deepen else ranking()
    for name in candidates if args.deepen else []:
        sweep(row_config(name), DEEP_SEEDS, args.out / name)
    picked = [n for n in ranking() if n in candidates][0]
    write_json(
        args.out / f"picked-round-{args.round}.json",
        {"picked": picked, "deepened": candidates if args.deepen else [], "ranking": ranking()},
    )
    print(f"picked on validation: {picked}\n", flush=True)
    sweep(row_config(picked, val=0), list(range(args.test_seeds)), args.out / f"test-{picked}")


if __name__ == "__main__":
    main()
