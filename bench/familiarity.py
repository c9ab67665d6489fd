"""Does the out-of-domain warning fire where it should, and only there?

    python -m bench.familiarity --sets bottle ksdd weld --checkpoints checkpoints

For each set that has a checkpoint of its name (sets without one are skipped): every test image
of its own set, by folder (good and each defect kind), and `--others` good test images of each of
the other sets given (another product, which the warning is for). Prints the lowest familiarity per folder of its own set, the highest among the other
products, and how many images of each fall below `FAMILIAR_MIN` (called out of domain). A defective
part called out of domain would hide a real defect behind a warning; another product not called
so would get a confident verdict that means nothing.
"""

from __future__ import annotations

import json
from pathlib import Path

import rbd
from bench import options
from rbd.detector import FAMILIAR_MIN, is_out_of_domain
from rbd.images import find_images


def familiarity(detector: rbd.Detector, paths: list[Path]) -> list[float]:
    values = [p.familiarity for p in detector.predict_batch(paths, 8)]
    if None in values:
        raise SystemExit("a checkpoint without a patch memory has no familiarity to measure")
    return values


def main() -> None:
    p = options.parser(__doc__)
    p.add_argument("--checkpoints", type=Path, default=Path("checkpoints"), help="folder of checkpoints named by set")
    p.add_argument("--others", type=int, default=10, help="good test images taken from each other set (default 10)")
    args = options.parse(p)
    rows = []
    sets = [name for name in args.sets if (args.checkpoints / name).is_dir()]
    for name in sets:
        detector = rbd.load(args.checkpoints / name)
        test = args.data / name / "test"
        groups = {kind.name: find_images(kind) for kind in sorted(test.iterdir()) if kind.is_dir()}
        groups["other products"] = [path for other in sets if other != name
                                    for path in find_images(args.data / other / "test" / "good")[: args.others]]
        for group, paths in groups.items():
            if not paths:
                continue
            values = familiarity(detector, paths)
            row = {"checkpoint": name, "images": group, "n": len(values), "min": min(values), "max": max(values),
                   "out of domain": sum(map(is_out_of_domain, values))}
            rows.append(row)
            print(json.dumps(row), flush=True)
    (args.out / "familiarity.json").write_text(json.dumps(rows, indent=1))
    print(f"\n| checkpoint | images | n | lowest familiarity | highest | called out of domain (< {FAMILIAR_MIN}) |\n|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['checkpoint']} | {r['images']} | {r['n']} | {r['min']:.2f} | {r['max']:.2f} | {r['out of domain']} |")


if __name__ == "__main__":
    main()
