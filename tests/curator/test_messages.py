"""Honest flags: `--model classic` means classic for every modality unless --audio-model."""

from __future__ import annotations

from curator.project import Project


def test_model_classic_means_classic_for_audio_too(tmp_path, media, capsys):
    from curator.cli import main

    src = tmp_path / "media"
    media.image(src / "a.png")
    media.wav(src / "b.wav")
    root = tmp_path / "proj"
    Project.create(root, [src]).close()
    main(["scan", str(root), "--workers", "0"])
    main(["embed", str(root), "--model", "classic", "--workers", "0", "--offline"])
    capsys.readouterr()
    with Project.open(root) as project:
        spaces = project.spaces()
        assert spaces and all(s["embedder"] == "classic" for s in spaces)
        assert sum(s["count"] for s in spaces) == 2  # the sound was embedded too
