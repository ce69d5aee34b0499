#!/usr/bin/env python3
"""Checks the README's server flag table against the defaults timbre-server reports.

timbre-server's flags take their defaults from the Options structs; `--helpfull` prints them. This
compares every flag of server/main.cc with its row of README.md's "Server flags" table (sizes such
as "64 MiB" and durations such as "60s" or "1m" compared by value) and fails naming each flag whose
row is missing or states another default.

usage: flag_defaults.py TIMBRE_SERVER README.md    (exit 0 all agree, 1 a mismatch, 2 usage)
"""

import math
import re
import subprocess
import sys

SIZES = {"B": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30}
DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h)$")
DURATION_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
# README wordings of an empty default.
EMPTY = {"(required)", "none", "(empty: off)", "<repo>/.timbre"}


def normalize(value):
    """A comparable form of a default as the README or abseil writes it."""
    value = value.strip().strip("`").strip('"')
    if value in EMPTY:
        return ""
    value = re.sub(r" \(.*\)$", "", value)  # "0 (one per core)" -> "0"
    if value == "inf":
        return math.inf
    size = re.match(r"^(\d+) (B|KiB|MiB|GiB)$", value)
    if size:
        return int(size.group(1)) * SIZES[size.group(2)]
    duration = DURATION.match(value)
    if duration:
        return float(duration.group(1)) * DURATION_UNITS[duration.group(2)]
    if re.match(r"^-?\d+$", value):
        return int(value)
    return value


def server_defaults(binary):
    """{flag: default} for the flags defined in server/main.cc."""
    text = subprocess.run([binary, "--helpfull"], capture_output=True, text=True).stdout
    sections = re.split(r"\n\s*Flags from ", text)
    main = [s for s in sections if s.split(":", 1)[0].endswith("server/main.cc")]
    if len(main) != 1:
        sys.exit(f"flag_defaults: no section of server/main.cc in {binary} --helpfull")
    defaults = {}
    # One entry per flag: "    --name (help, wrapped over lines); default: value;"
    # The section's last entry is followed by a blank line and --helpfull's closing text.
    for entry in re.split(r"\n(?=    --)", main[0].split("\n\n")[0])[1:]:
        flag = re.match(r"\s*--(\w+) ", entry)
        default = re.search(r";\s+default: (.*?);\s*$", entry, re.S)
        if not flag or not default:
            sys.exit(f"flag_defaults: cannot read this --helpfull entry:\n{entry}")
        defaults[flag.group(1)] = normalize(default.group(1))
    return defaults


def readme_defaults(readme):
    """{flag: default} from the rows of the "Server flags" table."""
    text = open(readme, encoding="utf-8").read()
    table = text.split("## Server flags", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in table.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 3 or not cells[0].startswith("`--"):
            continue
        flags = re.findall(r"`--(\w+)`", cells[0])
        values = cells[1].split(", ")
        if len(values) != len(flags):
            values = [cells[1]] * len(flags)  # one default for every flag of the row
        for flag, value in zip(flags, values):
            rows[flag] = normalize(value)
    return rows


def main(argv):
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    server, readme = server_defaults(argv[1]), readme_defaults(argv[2])
    errors = []
    for flag, default in sorted(server.items()):
        if flag not in readme:
            errors.append(f"--{flag}: no row in the README's server flag table")
        elif readme[flag] != default:
            errors.append(f"--{flag}: the README says {readme[flag]!r}, the server {default!r}")
    for flag in sorted(set(readme) - set(server)):
        errors.append(f"--{flag}: in the README's table but not a flag of timbre-server")
    for error in errors:
        print(f"flag_defaults: {error}", file=sys.stderr)
    print(f"flag_defaults: {len(server)} flags, {len(errors)} mismatches")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
