"""`./dev bench [--quick] [SUITE ...]`: run benchmarks and update BENCHMARKS.md."""

from __future__ import annotations

import argparse
import importlib

SUITES = ("ingestion", "webhooks", "invoicing")


def main() -> None:
    parser = argparse.ArgumentParser(prog="./dev bench")
    parser.add_argument("suites", nargs="*", help=f"any of {', '.join(SUITES)} (default: all)")
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke run")
    args = parser.parse_args()
    unknown = sorted(set(args.suites) - set(SUITES))
    if unknown:
        parser.error(f"unknown suites {unknown}; choose from {', '.join(SUITES)}")
    for suite in args.suites or SUITES:
        try:
            module = importlib.import_module(f"benchmarks.{suite}")
        except ModuleNotFoundError:
            print(f"[{suite}] not written yet, skipped")
            continue
        print(module.main(quick=args.quick))


if __name__ == "__main__":
    main()
