#!/usr/bin/env python3
"""Which replica served each speaker, from the replicas' /metrics scraped before and after a run.

    affinity.py NAME=BEFORE.txt:AFTER.txt ...

Counts, per replica and speaker, the frames blended in between (timbre_frames_total with the
speaker label, Blend and BlendStream), and the speakers each replica has loaded after. Prints a
line per replica and exits 1 if any speaker's frames reached more than one replica.
"""
import re
import sys

SAMPLE = re.compile(r'^timbre_frames_total\{method="(\w+)",speaker="([^"]*)"\} (\S+)$')
LOADED = re.compile(r'^timbre_speakers\{state="loaded"\} (\S+)$')


def frames_by_speaker(path):
    counts = {}
    with open(path) as text:
        for line in text:
            match = SAMPLE.match(line.strip())
            if match and match.group(2):
                counts[match.group(2)] = counts.get(match.group(2), 0) + float(match.group(3))
    return counts


def loaded(path):
    with open(path) as text:
        for line in text:
            match = LOADED.match(line.strip())
            if match:
                return int(float(match.group(1)))
    return 0


def main():
    owners = {}
    for argument in sys.argv[1:]:
        name, files = argument.split("=", 1)
        before_path, after_path = files.split(":")
        before, after = frames_by_speaker(before_path), frames_by_speaker(after_path)
        served = sorted(s for s in after if after[s] - before.get(s, 0) > 0)
        for speaker in served:
            owners.setdefault(speaker, []).append(name)
        print(f"  {name}: {len(served)} speakers called, {loaded(after_path)} loaded")
    shared = {s: r for s, r in owners.items() if len(r) > 1}
    print(f"  {len(owners)} speakers called, {len(shared)} on more than one replica")
    for speaker, replicas in sorted(shared.items()):
        print(f"    {speaker}: {', '.join(replicas)}")
    sys.exit(1 if shared else 0)


if __name__ == "__main__":
    main()
