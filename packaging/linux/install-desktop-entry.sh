#!/usr/bin/env bash
# Add Curator (this unpacked bundle folder) to the desktop's application menu, for this user:
# a .desktop entry under ~/.local/share/applications and the icon in the hicolor theme.
#   ./install-desktop-entry.sh            install      ./install-desktop-entry.sh --remove
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
DATA="${XDG_DATA_HOME:-$HOME/.local/share}"
APPS="$DATA/applications"
if [ "${1:-}" = "--remove" ]; then
  rm -f "$APPS/curator.desktop"
  rm -f "$DATA"/icons/hicolor/*/apps/curator.png
  echo "removed Curator from the application menu"
  exit 0
fi
mkdir -p "$APPS"
for png in "$HERE"/share/icons/curator-*.png; do
  size="$(basename "$png" .png)"; size="${size#curator-}"
  mkdir -p "$DATA/icons/hicolor/${size}x${size}/apps"
  cp "$png" "$DATA/icons/hicolor/${size}x${size}/apps/curator.png"
done
sed -e "s|^Exec=curator-gui|Exec=\"$HERE/curator-gui\"|" \
    -e "s|^TryExec=curator-gui|TryExec=$HERE/curator-gui|" \
    "$HERE/share/curator.desktop" > "$APPS/curator.desktop"
command -v update-desktop-database >/dev/null && update-desktop-database -q "$APPS" || true
command -v gtk-update-icon-cache >/dev/null && \
  gtk-update-icon-cache -q -t "$DATA/icons/hicolor" 2>/dev/null || true
echo "Curator is in the application menu ($APPS/curator.desktop)."
echo "For the command line: ln -s \"$HERE/curator\" ~/.local/bin/curator"
