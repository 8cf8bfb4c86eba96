"""``python -m pyimagesearch.commands.settings_table [--write-readme]``: the settings table."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pyimagesearch.settings.readme import markdown_table, readme_with_table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Print the settings table (Markdown), or "
                                                 "write it into README.md")
    parser.add_argument("--write-readme", metavar="README", nargs="?", const="README.md",
                        help="replace the table between the markers in README (default "
                             "README.md)")
    args = parser.parse_args(argv)
    if args.write_readme is None:
        sys.stdout.write(markdown_table() + "\n")
        return 0
    path = Path(args.write_readme)
    path.write_text(readme_with_table(path.read_text(encoding="utf-8")), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
