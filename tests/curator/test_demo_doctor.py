"""Honest model messages: `doctor` says what `embed` will do, every error names the flag that
fixes it, and the demo says once, accurately, that it runs without weights, then ends on the
next step with full paths."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from curator.project import Project


@pytest.fixture
def no_weights(tmp_path, monkeypatch):
    """An empty Hugging Face cache and no offline setting: weights are simply not here."""
    home = tmp_path / "hf_home"
    (home / "hub").mkdir(parents=True)
    monkeypatch.setenv("HF_HOME", str(home))
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_HUB_OFFLINE",
                "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    return home / "hub"


def test_model_check_names_the_flag_per_modality(no_weights):
    from curator.model_check import check_models

    image, audio = check_models("ViT-B-32/laion2b_s34b_b79k", "laion/clap-htsat-unfused",
                                probe_network=False)
    assert (image.status, audio.status) == ("missing", "missing")
    assert "`--model classic`" in image.embed_line() and "--weights FILE" in image.embed_line()
    assert "`--audio-model classic`" in audio.embed_line()
    assert "--weights" not in audio.embed_line()
    assert str(no_weights) in audio.embed_line() and "hf download laion/clap" in audio.fetch
    assert "offline mode was asked for" not in image.embed_line() + audio.embed_line()
    weightless = check_models("classic", "classic", probe_network=False)
    assert [c.status for c in weightless] == ["weight-free", "weight-free"]


def test_model_check_finds_a_local_checkpoint(no_weights, tmp_path):
    open_clip = pytest.importorskip("open_clip")
    import json

    import torch
    from safetensors.torch import save_file

    cfg = {"embed_dim": 16,
           "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "head_width": 16,
                          "patch_size": 16},
           "text_cfg": {"context_length": 8, "vocab_size": 49408, "width": 32, "heads": 2,
                        "layers": 1}}
    (tmp_path / "cfg").mkdir()
    (tmp_path / "cfg" / "CuratorDoctorTiny.json").write_text(json.dumps(cfg))
    open_clip.add_model_config(tmp_path / "cfg")
    torch.manual_seed(0)
    model = open_clip.create_model("CuratorDoctorTiny", pretrained=None)
    path = tmp_path / "tiny.safetensors"
    save_file({k: v.detach().clone().contiguous() for k, v in model.state_dict().items()},
              str(path))
    from curator.model_check import check_models

    image, _ = check_models("CuratorDoctorTiny", "classic", weights=str(path),
                            probe_network=False)
    assert image.status == "local" and str(path) in image.embed_line()


def test_doctor_says_what_embed_will_do_with_the_settings(no_weights, monkeypatch, capsys):
    from curator.doctor import embed_plan

    lines = embed_plan(probe_network=False)
    text = "\n".join(lines)
    assert "will use --model classic" not in text  # embed does not fall back by itself
    assert "`--model classic`" in lines[0] and "`--audio-model classic`" in lines[1]
    monkeypatch.setenv("CURATOR_MODEL", "classic")  # as `embed --model classic`: every modality
    lines = embed_plan(probe_network=False)
    assert all("weight-free" in line for line in lines) and len(lines) == 2


def test_embed_without_weights_names_the_audio_flag(no_weights, tmp_path, media, capsys,
                                                     monkeypatch):
    from curator.cli import main

    monkeypatch.setenv("CURATOR_OFFLINE", "1")
    src = tmp_path / "media"
    media.wav(src / "a.wav")
    root = tmp_path / "proj"
    Project.create(root, [src]).close()
    main(["scan", str(root), "--workers", "0"])
    capsys.readouterr()
    with pytest.raises(SystemExit) as info:
        main(["embed", str(root), "--model", "classic", "--audio-model",
              "laion/clap-htsat-unfused", "--workers", "0"])
    err = capsys.readouterr().err
    assert info.value.code == 1
    assert "Or use `--audio-model classic`" in err and "offline" in err
    assert "Or use `--model classic`" not in err


@pytest.mark.slow
def test_demo_notes_missing_weights_once_and_ends_with_the_next_step(no_weights, tmp_path):
    from curator.demo import run_demo

    lines: list[str] = []
    run_demo(tmp_path / "demo", items=30, echo=lines.append).close()
    notes = [line for line in lines if line.startswith("no weights")]
    assert len(notes) == 1 and "offline" not in notes[0]
    assert sum("weight-free classic" in line for line in lines) == 1
    assert "ViT-B-32" in notes[0] and "clap" in notes[0]
    project = (tmp_path / "demo" / "project").resolve()
    scripts = Path(sys.executable).parent
    # The next step is the last thing said, with full paths (no `curator` on PATH needed).
    assert lines[-2].startswith("next: ") and str(project) in lines[-2]
    assert str(scripts) in lines[-2] or sys.executable in lines[-2]
    assert "queue" in lines[-1] and str(project) in lines[-1]
    # The planted broken files are one line with their count and the command that lists them.
    broken = [line for line in lines if "broken files" in line]
    assert len(broken) == 1 and broken[0].startswith("6 ") and f"status {project}" in broken[0]
    assert not any(line.lstrip().startswith("broken/") for line in lines)
    assert any(line.startswith("done: ") and str(project) in line for line in lines)


def test_fallback_note_gives_the_real_reason_per_model(no_weights):
    from curator.model_check import check_models, fallback_note

    checks = check_models("NoSuchArch-123/none", "laion/clap-htsat-unfused",
                          probe_network=False)
    note = fallback_note(checks, "the demo")
    assert note.count("\n") == 0
    assert "no weights for laion/clap-htsat-unfused (audio)" in note
    assert "NoSuchArch-123/none (image/video) cannot run here" in note
    assert "no weights for NoSuchArch" not in note
    assert fallback_note(check_models("classic", "classic", probe_network=False)) is None
