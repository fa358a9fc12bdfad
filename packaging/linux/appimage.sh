#!/usr/bin/env bash
# Turn the one-folder bundle (make package) into an AppImage: `make appimage [FLAVOUR=...]`.
#
# Builds build/package/<flavour>/Curator.AppDir (the bundle under usr/lib/curator, the desktop
# entry, icons and AppStream metadata), then packs it with appimagetool when it is on PATH
# (or APPIMAGETOOL=/path/to/appimagetool-x86_64.AppImage) into
# dist/Curator-<version>-<arch>-<flavour>.AppImage. appimagetool is a download from the
# AppImage project's releases, not a package: without it the AppDir is left ready and the
# command to finish is printed.
set -euo pipefail
cd "$(dirname "$0")/../.."
FLAVOUR="${FLAVOUR:-lite}"
OUT="build/package/$FLAVOUR"
BUNDLE="$OUT/dist/Curator"
[ -x "$BUNDLE/curator-gui" ] || { echo "no bundle at $BUNDLE; run make package first" >&2; exit 1; }
APPDIR="$OUT/Curator.AppDir"
rm -rf "$APPDIR"
mkdir -p "$APPDIR/usr/lib" "$APPDIR/usr/bin" "$APPDIR/usr/share/applications" \
         "$APPDIR/usr/share/metainfo"
cp -a "$BUNDLE" "$APPDIR/usr/lib/curator"
ln -s ../lib/curator/curator "$APPDIR/usr/bin/curator"
ln -s ../lib/curator/curator-gui "$APPDIR/usr/bin/curator-gui"
install -m 755 packaging/linux/AppRun "$APPDIR/AppRun"
cp packaging/linux/curator.desktop "$APPDIR/curator.desktop"
cp packaging/linux/curator.desktop "$APPDIR/usr/share/applications/curator.desktop"
cp packaging/linux/org.curator.Curator.metainfo.xml "$APPDIR/usr/share/metainfo/"
for png in "$OUT"/icons/curator-*.png; do
  size="$(basename "$png" .png)"; size="${size#curator-}"
  mkdir -p "$APPDIR/usr/share/icons/hicolor/${size}x${size}/apps"
  cp "$png" "$APPDIR/usr/share/icons/hicolor/${size}x${size}/apps/curator.png"
done
cp "$OUT/icons/curator-256.png" "$APPDIR/curator.png"
ln -s curator.png "$APPDIR/.DirIcon"
echo "AppDir ready: $APPDIR ($(du -sh "$APPDIR" | cut -f1))"

version=$("$OUT/venv/bin/python" -c 'import curator; print(curator.__version__)')
arch=$(uname -m)
target="dist/Curator-$version-$arch-$FLAVOUR.AppImage"
tool="${APPIMAGETOOL:-$(command -v appimagetool || true)}"
if [ -z "$tool" ]; then
  echo "appimagetool not found; to finish: ARCH=$arch appimagetool $APPDIR $target"
  exit 0
fi
mkdir -p dist
ARCH="$arch" "$tool" --no-appstream "$APPDIR" "$target"
echo "$target: $(du -h "$target" | cut -f1)"
