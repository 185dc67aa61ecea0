"""`./dev bench [--quick] [SUITE ...]`: run benchmarks and update BENCHMARKS.md."""

from __future__ import annotations

import argparse
import importlib
import inspect

SUITES = ("ingestion", "webhooks", "invoicing", "scale", "soak")
# The long ones (tens of minutes: a store of 50M events, a soak) run when named.
DEFAULT_SUITES = ("ingestion", "webhooks", "invoicing")


def _numbers(text: str) -> list[int]:
    return [int(part.replace("_", "")) for part in text.split(",") if part]


def _names(text: str) -> list[str]:
    return [part for part in text.split(",") if part]


def main() -> None:
    parser = argparse.ArgumentParser(prog="./dev bench")
    parser.add_argument(
        "suites",
        nargs="*",
        help=f"any of {', '.join(SUITES)} (default: {', '.join(DEFAULT_SUITES)})",
    )
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke run")
    parser.add_argument(
        "--points",
        type=_numbers,
        help="scale: events stored at each point, e.g. 0,1000000,10000000",
    )
    parser.add_argument("--ids", type=_names, help="scale: id kinds, e.g. uuid4,uuid7,sequential")
    parser.add_argument("--events", type=int, help="scale: events streamed at each point")
    parser.add_argument(
        "--backends",
        type=_names,
        help="scale: sqlite and/or postgres (postgres needs "
        "BILLING_TEST_DATABASE_URL; default: both when it is set)",
    )
    parser.add_argument(
        "--cache",
        help="scale: keep the SQLite base store (its accounts, made through the API) in this "
        "directory and reuse it in later runs",
    )
    parser.add_argument("--minutes", type=float, help="soak: how long")
    parser.add_argument(
        "--rate", type=float, help="soak: events/s offered (0: as fast as the service takes them)"
    )
    args = parser.parse_args()
    unknown = sorted(set(args.suites) - set(SUITES))
    if unknown:
        parser.error(f"unknown suites {unknown}; choose from {', '.join(SUITES)}")
    options = {
        name: value
        for name, value in vars(args).items()
        if name not in ("suites", "quick") and value is not None
    }
    for suite in args.suites or DEFAULT_SUITES:
        try:
            module = importlib.import_module(f"benchmarks.{suite}")
        except ModuleNotFoundError:
            print(f"[{suite}] not written yet, skipped")
            continue
        accepted = inspect.signature(module.main).parameters
        ignored = sorted(set(options) - set(accepted))
        if ignored:
            print(f"[{suite}] ignores --{', --'.join(ignored)}")
        print(module.main(quick=args.quick, **{k: v for k, v in options.items() if k in accepted}))


if __name__ == "__main__":
    main()
