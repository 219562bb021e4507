"""Re-export the shipped controllers (card format 1, SB3 pickles) so that acting reads no pickle.

    python benchmarks/reexport_checkpoints.py            # every checkpoints/*/ still in format 1

Not a benchmark: a one-off maintenance script kept for the record. It unpickles the
old ``model.zip`` and ``vecnormalize.pkl`` once (they are the project's own files) and
writes the safetensors weights, the JSON statistics and a format-2 card
(:func:`lrgym.checkpoints.upgrade.upgrade_checkpoint`). ``tests/test_checkpoint.py``
checks that the re-exported controllers act exactly as the old files did, on the
observations of ``tests/data/shipped_controller_actions.json`` (recorded before).
"""

from __future__ import annotations

import json

from lrgym.checkpoints.upgrade import upgrade_checkpoint
from lrgym.tasks.specs import project_root


def main() -> None:
    for card_path in sorted((project_root() / "checkpoints").glob("*/card.json")):
        if json.loads(card_path.read_text()).get("format") != 1:
            print(f"{card_path.parent.name}: already format 2")
            continue
        card = upgrade_checkpoint(card_path.parent)
        print(f"{card_path.parent.name}: " + ", ".join(entry["name"] for entry in card["files"].values()))


if __name__ == "__main__":
    main()
