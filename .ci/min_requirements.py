"""Print the lowest versions setup.cfg allows, as pins (``Flask==3.0``), for `make test-min`.

Only ``install_requires`` and the ``redis`` extra are pinned: the test tools stay current.
"""

from __future__ import annotations

import configparser
import re
import sys
from pathlib import Path


def pins(setup_cfg: Path) -> list[str]:
    config = configparser.ConfigParser()
    config.read(setup_cfg)
    lines = config["options"]["install_requires"].splitlines()
    lines += config["options.extras_require"]["redis"].splitlines()
    out = []
    for line in filter(None, (raw.strip() for raw in lines)):
        match = re.fullmatch(r"([A-Za-z0-9_.\-\[\]]+)\s*>=\s*([0-9][^,;\s]*)", line)
        if match is None:
            sys.exit(f"{line!r}: every runtime requirement needs a '>=' lower bound")
        out.append(f"{match.group(1)}=={match.group(2)}")
    return out


if __name__ == "__main__":
    print("\n".join(pins(Path(sys.argv[1] if len(sys.argv) > 1 else "setup.cfg"))))
