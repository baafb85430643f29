"""Small generated recordings for the audio and video tests: speech by espeak-ng, encoded by ffmpeg.

Each helper skips the calling test with the reason when a binary is missing (install them with
``apt-get install ffmpeg espeak-ng libchromaprint-tools``; ``./scripts/test`` does).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

TOOLS = {"ffmpeg": "ffmpeg", "ffprobe": "ffmpeg", "espeak-ng": "espeak-ng", "fpcalc": "libchromaprint-tools"}

FIRST = "The blue whale is the largest animal that has ever lived on this planet."
SECOND = "Volcanic eruptions can change the weather of the whole world for several years."


def need_tools() -> None:
    missing = sorted({package for program, package in TOOLS.items() if shutil.which(program) is None})
    if missing:
        pytest.skip(f"needs {', '.join(missing)} (apt-get install {' '.join(missing)})")


def run(*cmd: str) -> None:
    subprocess.run(cmd, check=True, capture_output=True, timeout=120)


def speak(path: Path, text: str, voice: str = "en-us", speed: int = 165) -> Path:
    run("espeak-ng", "-v", voice, "-s", str(speed), "-w", str(path), text)
    return path


def talk(folder: Path) -> Path:
    """A WAV of two sentences with 6 s of silence between them (about 16 s)."""
    first, second = speak(folder / "first.wav", FIRST), speak(folder / "second.wav", SECOND, "en-gb", 150)
    out = folder / "talk.wav"
    run(
        "ffmpeg",
        "-v",
        "error",
        "-y",
        "-i",
        str(first),
        "-i",
        str(second),
        "-filter_complex",
        "[0]aresample=16000,apad=pad_dur=6[a];[1]aresample=16000[b];[a][b]concat=n=2:v=0:a=1",
        "-ac",
        "1",
        str(out),
    )
    return out


def encode(source: Path, out: Path, *args: str) -> Path:
    run("ffmpeg", "-v", "error", "-y", "-i", str(source), *args, str(out))
    return out


def video(folder: Path, images: list[Path], texts: list[str], seconds: float = 4.0) -> Path:
    """An MP4 showing each image for ``seconds`` while the matching text is spoken."""
    cmd = ["ffmpeg", "-v", "error", "-y"]
    for image in images:
        cmd += ["-loop", "1", "-t", str(seconds), "-i", str(image)]
    for i, text in enumerate(texts):
        cmd += ["-i", str(speak(folder / f"say{i}.wav", text))]
    n = len(images)
    graph = "".join(f"[{i}]scale=320:240,setsar=1,fps=25[v{i}];" for i in range(n))
    graph += "".join(f"[{n + i}]aresample=16000,apad=whole_dur={seconds}[a{i}];" for i in range(n))
    graph += "".join(f"[v{i}]" for i in range(n)) + f"concat=n={n}:v=1:a=0[v];"
    graph += "".join(f"[a{i}]" for i in range(n)) + f"concat=n={n}:v=0:a=1[a]"
    out = folder / "show.mp4"
    cmd += ["-filter_complex", graph, "-map", "[v]", "-map", "[a]", "-c:v", "libx264", "-pix_fmt", "yuv420p"]
    run(*cmd, "-c:a", "aac", str(out))
    return out


def typeset(pages: list[list[str]]) -> bytes:
    """A PDF with a text layer, one page per list of lines (reportlab; skips the test without it)."""
    import io

    pytest.importorskip("reportlab", reason="the test PDFs are typeset with reportlab: pip install 'xmodal[test]'")
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfgen import canvas

    out = io.BytesIO()
    pdf = canvas.Canvas(out, pagesize=A4)
    for lines in pages:
        pdf.setFont("Helvetica", 14)
        for row, line in enumerate(lines):
            pdf.drawString(72, 760 - row * 22, line)
        pdf.showPage()
    pdf.save()
    return out.getvalue()


def two_shots(folder: Path, seconds: float = 3.0) -> Path:
    """An MP4 of two narrated shots: a red one (a sunset) and a green one (sheep in a meadow)."""
    from PIL import Image

    images = []
    for i, color in enumerate([(200, 40, 40), (40, 170, 60)]):
        images.append(folder / f"shot{i}.png")
        Image.new("RGB", (64, 48), color).save(images[-1])
    return video(folder, images, ["A red sunset over the harbour.", "Green meadows full of sheep."], seconds)
