# Build the Windows bundle and installer (not built by CI: it needs Windows).
#   powershell -ExecutionPolicy Bypass -File packaging\windows\build.ps1 [-Flavour lite|full]
# Needs: Python 3.10+ (python.org or winget), Inno Setup 6 (iscc.exe on PATH or in its default
# folder). Output: build\package\<flavour>\dist\Curator\ and dist\Curator-<v>-windows-x64-<flavour>-setup.exe
param([ValidateSet("lite", "full")][string]$Flavour = "lite")
$ErrorActionPreference = "Stop"
Set-Location (Join-Path $PSScriptRoot "..\..")
$Out = "build\package\$Flavour"
$Venv = "$Out\venv"
if (-not (Test-Path "$Venv\Scripts\python.exe")) { python -m venv $Venv }
$Py = "$Venv\Scripts\python.exe"
& $Py -m pip install -q --upgrade pip "uv>=0.4"
& $Py packaging\requirements.py $Flavour | Set-Content -Encoding utf8 "$Out\requirements.txt"
if ($Flavour -eq "full") {
  # CPU torch keeps the installer small; drop --index-url for CUDA builds.
  & "$Venv\Scripts\uv.exe" pip install -q --python $Py torch --index-url https://download.pytorch.org/whl/cpu
}
& "$Venv\Scripts\uv.exe" pip install -q --python $Py -r "$Out\requirements.txt" -r packaging\requirements-build.txt
& "$Venv\Scripts\uv.exe" pip install -q --python $Py --no-deps --reinstall-package curator .
& $Py packaging\icons\make_icons.py --out "$Out\icons"
& $Py packaging\windows\make_version_file.py "$Out\version_info.txt"
$env:FLAVOUR = $Flavour
$env:CURATOR_ICONS = (Resolve-Path "$Out\icons").Path
$env:CURATOR_WIN_VERSION_FILE = (Resolve-Path "$Out\version_info.txt").Path
& "$Venv\Scripts\pyinstaller.exe" --noconfirm --clean --log-level WARN --workpath "$Out\work" --distpath "$Out\dist" packaging\curator.spec
Copy-Item LICENSE "$Out\dist\Curator\LICENSE"
& "$Out\dist\Curator\curator.exe" --version
$Version = & $Py -c "import curator; print(curator.__version__)"
$Iscc = (Get-Command iscc.exe -ErrorAction SilentlyContinue).Source
if (-not $Iscc) { $Iscc = "${env:ProgramFiles(x86)}\Inno Setup 6\ISCC.exe" }
& $Iscc "/DAppVersion=$Version" "/DFlavour=$Flavour" "/DBundleDir=$((Resolve-Path "$Out\dist\Curator").Path)" "/DIconFile=$((Resolve-Path "$Out\icons\curator.ico").Path)" packaging\windows\curator.iss
