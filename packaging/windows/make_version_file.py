"""Write the Windows version resource PyInstaller embeds in curator.exe / curator-gui.exe.

    python packaging/windows/make_version_file.py OUT.txt
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from curator import __version__  # noqa: E402 - after the path insert

TEMPLATE = """VSVersionInfo(
  ffi=FixedFileInfo(filevers={nums}, prodvers={nums}, mask=0x3f, flags=0x0, OS=0x40004,
                    fileType=0x1, subtype=0x0, date=(0, 0)),
  kids=[
    StringFileInfo([StringTable('040904B0', [
      StringStruct('CompanyName', 'Curator contributors'),
      StringStruct('FileDescription', 'Curator: dataset curation'),
      StringStruct('FileVersion', '{version}'),
      StringStruct('InternalName', 'curator'),
      StringStruct('LegalCopyright', 'Apache-2.0'),
      StringStruct('OriginalFilename', 'curator-gui.exe'),
      StringStruct('ProductName', 'Curator'),
      StringStruct('ProductVersion', '{version}')])]),
    VarFileInfo([VarStruct('Translation', [1033, 1200])])
  ]
)
"""


def main() -> int:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "build/version_info.txt")
    parts = [int("".join(c for c in p if c.isdigit()) or 0) for p in __version__.split(".")[:3]]
    nums = tuple(parts + [0] * (4 - len(parts)))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(TEMPLATE.format(nums=nums, version=__version__), encoding="utf-8")
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
