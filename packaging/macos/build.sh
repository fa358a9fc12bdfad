#!/usr/bin/env bash
# Build Curator.app and Curator-<version>-macos-<arch>-<flavour>.dmg (needs macOS; not built by CI).
#   packaging/macos/build.sh [lite|full]
# Optional signing and notarisation (without them the app is ad-hoc signed: it runs on the
# machine that built it; elsewhere users must right-click ▸ Open once):
#   CODESIGN_IDENTITY="Developer ID Application: NAME (TEAMID)"
#   NOTARY_PROFILE=<a profile stored with `xcrun notarytool store-credentials`>
set -euo pipefail
cd "$(dirname "$0")/../.."
FLAVOUR="${1:-${FLAVOUR:-lite}}"
PYTHON="${PYTHON:-python3}"
OUT="build/package/$FLAVOUR"
VENV="$OUT/venv"
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip 'uv>=0.4'
"$VENV/bin/python" packaging/requirements.py "$FLAVOUR" > "$OUT/requirements.txt"
UV=("$VENV/bin/uv" pip install -q --python "$VENV/bin/python")
"${UV[@]}" -r "$OUT/requirements.txt" -r packaging/requirements-build.txt  # macOS torch wheels are CPU/MPS
"${UV[@]}" --no-deps --reinstall-package curator .
"$VENV/bin/python" packaging/icons/make_icons.py --out "$OUT/icons"
FLAVOUR="$FLAVOUR" CURATOR_ICONS="$OUT/icons" "$VENV/bin/pyinstaller" --noconfirm --clean \
  --log-level WARN --workpath "$OUT/work" --distpath "$OUT/dist" packaging/curator.spec
APP="$OUT/dist/Curator.app"
"$APP/Contents/MacOS/curator" --version

identity="${CODESIGN_IDENTITY:--}"
codesign --force --deep --options runtime --timestamp=none --sign "$identity" "$APP"
version=$("$VENV/bin/python" -c 'import curator; print(curator.__version__)')
dmg="dist/Curator-$version-macos-$(uname -m)-$FLAVOUR.dmg"
stage="$OUT/dmg"
rm -rf "$stage" && mkdir -p "$stage" dist
cp -R "$APP" "$stage/"
ln -s /Applications "$stage/Applications"
hdiutil create -volname "Curator $version" -srcfolder "$stage" -ov -format UDZO "$dmg"
if [ -n "${NOTARY_PROFILE:-}" ]; then
  codesign --sign "$identity" "$dmg"
  xcrun notarytool submit "$dmg" --keychain-profile "$NOTARY_PROFILE" --wait
  xcrun stapler staple "$dmg"
fi
echo "$dmg: $(du -h "$dmg" | cut -f1)"
echo "CLI: sudo ln -s /Applications/Curator.app/Contents/MacOS/curator /usr/local/bin/curator"
