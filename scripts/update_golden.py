"""Regenerate tests/data/loss_curve.json, the golden loss curve, after a change meant to move it.

    python scripts/update_golden.py

Runs the same tiny run as tests/test_loss_curve.py (its `curve`), writes the file, and prints the largest
relative change per kind so the commit message can say what moved.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1] / "tests"


def main() -> int:
    sys.path.insert(0, str(TESTS))
    from test_loss_curve import GOLDEN, curve  # the run the test pins, defined once

    old = json.loads(GOLDEN.read_text()) if GOLDEN.exists() else None
    with tempfile.TemporaryDirectory() as tmp:
        new = curve(Path(tmp))
    GOLDEN.write_text(json.dumps(new, indent=2, sort_keys=True) + "\n")
    print(f"wrote {GOLDEN}")
    if old:
        for kind in ("train_loss", "val_loss"):
            moved = max(abs(new[kind][k] / old[kind][k] - 1) for k in old[kind] if k in new[kind])
            print(f"{kind}: largest relative change {moved:.2e}")
        print(f"final_val_loss: {old['final_val_loss']:.6f} -> {new['final_val_loss']:.6f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
