; Inno Setup 6 script: the Windows installer for the one-folder bundle.
;   packaging\windows\build.ps1 builds the bundle and then runs:
;   iscc /DAppVersion=0.1.0 /DFlavour=lite /DBundleDir=build\package\lite\dist\Curator packaging\windows\curator.iss
; Per-user install by default (no administrator rights); the dialog offers all users.
#ifndef AppVersion
  #define AppVersion "0.1.0"
#endif
#ifndef Flavour
  #define Flavour "lite"
#endif
#ifndef BundleDir
  #define BundleDir "..\..\build\package\" + Flavour + "\dist\Curator"
#endif
#ifndef IconFile
  #define IconFile "..\..\build\package\" + Flavour + "\icons\curator.ico"
#endif

[Setup]
AppId={{6F1C2A5E-7D3B-4C1E-9B8A-2E5F4D3C2B1A}
AppName=Curator
AppVersion={#AppVersion}
AppVerName=Curator {#AppVersion} ({#Flavour})
AppPublisher=Curator contributors
DefaultDirName={autopf}\Curator
DefaultGroupName=Curator
PrivilegesRequired=lowest
PrivilegesRequiredOverridesAllowed=dialog
ArchitecturesAllowed=x64compatible
ArchitecturesInstallIn64BitMode=x64compatible
LicenseFile=..\..\LICENSE
SetupIconFile={#IconFile}
UninstallDisplayIcon={app}\curator-gui.exe
OutputDir=..\..\dist
OutputBaseFilename=Curator-{#AppVersion}-windows-x64-{#Flavour}-setup
Compression=lzma2/max
SolidCompression=yes
WizardStyle=modern
ChangesEnvironment=yes

[Tasks]
Name: "desktopicon"; Description: "{cm:CreateDesktopIcon}"; GroupDescription: "{cm:AdditionalIcons}"; Flags: unchecked
Name: "addtopath"; Description: "Add the curator command to PATH"; GroupDescription: "Command line:"

[Files]
Source: "{#BundleDir}\*"; DestDir: "{app}"; Flags: ignoreversion recursesubdirs createallsubdirs

[Icons]
Name: "{group}\Curator"; Filename: "{app}\curator-gui.exe"; IconFilename: "{app}\curator-gui.exe"
Name: "{group}\Uninstall Curator"; Filename: "{uninstallexe}"
Name: "{autodesktop}\Curator"; Filename: "{app}\curator-gui.exe"; Tasks: desktopicon

[Registry]
; The CLI on PATH (per user, or for all users in an administrative install).
Root: HKA; Subkey: "Environment"; ValueType: expandsz; ValueName: "Path"; \
  ValueData: "{olddata};{app}"; Tasks: addtopath; Check: NeedsAddPath(ExpandConstant('{app}'))

[Run]
Filename: "{app}\curator-gui.exe"; Description: "{cm:LaunchProgram,Curator}"; Flags: nowait postinstall skipifsilent

[Code]
function NeedsAddPath(Dir: string): Boolean;
var
  Paths: string;
begin
  if not RegQueryStringValue(HKEY_CURRENT_USER, 'Environment', 'Path', Paths) then
  begin
    Result := True;
    exit;
  end;
  Result := Pos(';' + Uppercase(Dir) + ';', ';' + Uppercase(Paths) + ';') = 0;
end;
