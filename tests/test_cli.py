"""The CLI end to end with the real built-in model: bad input, resume after kill, JSON."""

from __future__ import annotations

import io
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import distinct_images, near_duplicate
from visualsearch.cli import build_parser, main
from visualsearch.core.sample import exif_rotate_variant, skimage_photos


def run_cli(capsys, app_paths, *argv) -> tuple[int, str, str]:
    code = main(list(argv), paths=app_paths)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def bad_folder(tmp_path_factory) -> Path:
    """Every kind of bad input next to good photos, including valid-but-odd ones."""
    d = tmp_path_factory.mktemp("bad")
    chelsea = Image.open(next(p for p in skimage_photos() if p.stem == "chelsea")).convert("RGB")
    chelsea.save(d / "good.jpg", quality=90)
    full = (d / "good.jpg").read_bytes()
    (d / "truncated.jpg").write_bytes(full[: len(full) // 2])
    (d / "empty.jpg").write_bytes(b"")
    (d / "notes.jpg").write_text("this is a text file with an image name\n")
    chelsea.convert("CMYK").save(d / "cmyk.jpg", quality=90)
    arr = (np.asarray(chelsea.convert("L"), np.uint16) * 257).astype("<u2")
    Image.fromarray(arr).save(d / "deep16.png")
    (d / "rotated.jpg").write_bytes(exif_rotate_variant(chelsea))
    Image.new("1", (20000, 20000)).save(d / "huge.png")
    buf = io.BytesIO()
    chelsea.save(buf, "PNG")
    (d / "really_a_png.jpg").write_bytes(buf.getvalue())
    pal = chelsea.convert("RGBA")
    pal.putalpha(128)
    pal.convert("P").save(d / "palette_alpha.png", transparency=0)
    os.mkfifo(d / "pipe.jpg")
    os.symlink(".", d / "loop")  # a folder that contains itself
    os.symlink(d / "missing.jpg", d / "dangling.jpg")
    (d / "unreadable.jpg").write_bytes(full)
    os.chmod(d / "unreadable.jpg", 0)
    return d


GOOD = {
    "good.jpg",
    "cmyk.jpg",
    "deep16.png",
    "rotated.jpg",
    "really_a_png.jpg",
    "palette_alpha.png",
}
BAD = {
    "truncated.jpg": "truncated",
    "empty.jpg": "empty",
    "notes.jpg": "not an image",
    "huge.png": "too large",
    "pipe.jpg": "regular file",
    "loop": "loop",
    "dangling.jpg": "broken",
}


def test_bad_input_folder_indexes_to_completion(bad_folder, app_paths, capsys, tmp_path):
    store = str(tmp_path / "store")
    code, out, err = run_cli(
        capsys, app_paths, "index", str(bad_folder), "--store", store, "--json"
    )
    assert code == 0, err
    report = json.loads(out)
    assert report["failed"] == len(BAD) - 3  # pipe, loop, dangling are scan problems
    assert report["encoded"] and report["backend"] in ("openvino bf16", "onnxruntime fp32")
    code, out, _ = run_cli(capsys, app_paths, "info", str(bad_folder), "--store", store, "--json")
    info = json.loads(out)
    skipped = {s["path"]: s["reason"] for s in info["skipped"]}
    for name, reason in BAD.items():
        assert reason in skipped[name], (name, skipped.get(name))
    expected_good = set(GOOD)
    if os.geteuid() != 0:  # root reads any file, so only then is it really unreadable
        assert "permission" in skipped["unreadable.jpg"]
    else:
        expected_good.add("unreadable.jpg")
    assert info["indexed"]["builtin-effnetlite2-v1"] == len(expected_good)
    # the rotated photo is recorded upright and still looks like the cat
    with sqlite3.connect(Path(store) / "catalog.sqlite") as db:
        w, h = db.execute("SELECT width, height FROM files WHERE path='rotated.jpg'").fetchone()
    assert (w, h) == (451, 300)
    code, out, _ = run_cli(
        capsys,
        app_paths,
        "similar",
        str(bad_folder),
        str(bad_folder / "good.jpg"),
        "--store",
        store,
        "--json",
        "-k",
        "3",
    )
    top = {Path(h["path"]).name for h in json.loads(out)}
    assert top <= GOOD | {"unreadable.jpg"} and "rotated.jpg" in top
    # the table form lists every skipped file with its reason
    code, out, _ = run_cli(capsys, app_paths, "info", str(bad_folder), "--store", store)
    assert "truncated.jpg: file is truncated" in out and "huge.png: image too large" in out


@pytest.mark.skipif(
    os.geteuid() != 0 or not Path("/usr/bin/setpriv").exists(),
    reason="needs root to drop to an unprivileged user",
)
def test_unreadable_file_as_an_ordinary_user(tmp_path_factory, app_paths):
    """As root every file is readable, so run the real CLI as 'nobody' for this case."""
    import tempfile

    base = Path(tempfile.mkdtemp(prefix="vs-nobody-"))
    os.chmod(base, 0o777)
    pics = base / "pics"
    pics.mkdir()
    chelsea = next(p for p in skimage_photos() if p.stem == "chelsea")
    Image.open(chelsea).convert("RGB").save(pics / "ok.jpg")
    (pics / "secret.jpg").write_bytes((pics / "ok.jpg").read_bytes())
    os.chmod(pics / "secret.jpg", 0)
    env = dict(
        os.environ,
        HOME=str(base),
        XDG_DATA_HOME=str(base / "data"),
        XDG_CACHE_HOME=str(base / "cache"),
    )
    drop = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable]
    probe = subprocess.run([*drop, "-c", "import visualsearch"], env=env, capture_output=True)
    if probe.returncode != 0:
        pytest.skip("this checkout is not readable by the unprivileged user")
    cmd = [*drop, "-m", "visualsearch", "index", str(pics), "--json"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["errors"] == [["secret.jpg", "permission denied"]]
    assert report["encoded"] == 1


def test_killed_run_resumes_without_losing_committed_work(tmp_path, app_paths):
    pics = tmp_path / "pics"
    distinct_images(pics, 48, size=300)
    store = tmp_path / "store"
    env = dict(
        os.environ,
        XDG_DATA_HOME=str(app_paths.data_dir.parent),
        XDG_CACHE_HOME=str(app_paths.cache_dir.parent),
    )
    cmd = [
        sys.executable,
        "-m",
        "visualsearch",
        "index",
        str(pics),
        "--store",
        str(store),
        "--batch-size",
        "4",
        "--workers",
        "1",
        "--threads",
        "1",
        "--json",
    ]
    with subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as proc:
        committed = 0
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with sqlite3.connect(store / "catalog.sqlite", timeout=1) as db:
                    committed = db.execute("SELECT COUNT(*) FROM files").fetchone()[0]
            except sqlite3.Error:
                committed = 0
            if committed >= 8:
                proc.send_signal(signal.SIGKILL)
                break
            time.sleep(0.02)
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    with sqlite3.connect(store / "catalog.sqlite") as db:
        kept = db.execute("SELECT COUNT(*) FROM vectors").fetchone()[0]
        files = db.execute("SELECT COUNT(*) FROM files").fetchone()[0]
    assert 8 <= kept < 48 and kept % 4 == 0 and files == kept  # whole batches only
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["unchanged"] == kept and report["encoded"] == 48 - kept


def test_search_json_and_table(photos_dir, app_paths, capsys, tmp_path):
    store = str(tmp_path / "s")
    code, out, err = run_cli(
        capsys,
        app_paths,
        "search",
        str(photos_dir),
        "a photo of a cat",
        "-k",
        "3",
        "--store",
        store,
        "--json",
    )
    assert code == 0, err
    hits = json.loads(out)
    assert [h["rank"] for h in hits] == [1, 2, 3]
    assert Path(hits[0]["path"]).name == "chelsea.png" and Path(hits[0]["path"]).is_absolute()
    assert hits[0]["score"] >= hits[1]["score"] >= hits[2]["score"]
    code, out, _ = run_cli(
        capsys, app_paths, "search", str(photos_dir), "a cup of coffee", "-k", "2", "--store", store
    )
    assert code == 0 and out.splitlines()[1].split()[-1] == "coffee.png"
    code, out, _ = run_cli(
        capsys,
        app_paths,
        "search",
        str(photos_dir),
        "a photo of a cat",
        "--store",
        store,
        "--min-score",
        "0.99",
        "--json",
    )
    assert json.loads(out) == []  # an honest "no strong match"


def test_clear_errors(app_paths, capsys, tmp_path):
    code, _, err = run_cli(capsys, app_paths, "index", str(tmp_path / "nope"))
    assert code == 1 and "folder not found" in err
    (tmp_path / "file.txt").write_text("x")
    code, _, err = run_cli(capsys, app_paths, "index", str(tmp_path / "file.txt"))
    assert code == 1 and "not a folder" in err
    code, _, err = run_cli(capsys, app_paths, "index", str(tmp_path), "--model", "resnet")
    assert code == 1 and "unknown model" in err
    empty = tmp_path / "empty"
    empty.mkdir()
    code, _, err = run_cli(
        capsys, app_paths, "search", str(empty), "cat", "--store", str(tmp_path / "st")
    )
    assert code == 1 and "no images indexed" in err


def test_default_store_lives_outside_the_folder(photos_dir, app_paths, capsys):
    before = sorted(p.name for p in photos_dir.iterdir())
    code, out, _ = run_cli(capsys, app_paths, "index", str(photos_dir), "--json")
    assert code == 0
    assert sorted(p.name for p in photos_dir.iterdir()) == before  # nothing written there
    code, out, _ = run_cli(capsys, app_paths, "info", str(photos_dir), "--json")
    info = json.loads(out)
    assert Path(info["store"]).is_relative_to(app_paths.data_dir)
    assert info["store_bytes"] > 0 and info["model_spec"] == "builtin"


def test_similar_leaves_out_files_deleted_since_indexing(tmp_path, app_paths, capsys):
    """`similar` runs the one query path: a deleted nearest neighbour is not listed (was:
    listed first, a path that no longer exists)."""
    folder = tmp_path / "pics"
    folder.mkdir()
    wanted = ("chelsea", "coffee", "rocket", "astronaut", "horse")
    for p in skimage_photos():
        if p.stem in wanted:
            Image.open(p).convert("RGB").save(folder / f"{p.stem}.png")
    near_duplicate(Image.open(folder / "chelsea.png")).save(folder / "chelsea copy.jpg")
    store = str(tmp_path / "store")
    query = ["similar", str(folder), str(folder / "chelsea.png"), "--store", store]
    code, out, err = run_cli(capsys, app_paths, *query, "-k", "1", "--json")
    assert code == 0, err
    assert [Path(h["path"]).name for h in json.loads(out)] == ["chelsea copy.jpg"]
    (folder / "chelsea copy.jpg").unlink()
    code, out, err = run_cli(capsys, app_paths, *query, "-k", "3", "--json")
    assert code == 0, err
    names = [Path(h["path"]).name for h in json.loads(out)]
    assert len(names) == 3 and "chelsea copy.jpg" not in names and "chelsea.png" not in names
    code, out, _ = run_cli(capsys, app_paths, *query, "-k", "1", "--include-self", "--json")
    assert [Path(h["path"]).name for h in json.loads(out)] == ["chelsea.png"]
    code, out, _ = run_cli(capsys, app_paths, *query, "--min-score", "0.999")
    assert code == 0 and "no match reaches 0.999" in out


class Typed(io.StringIO):
    """What a user types at the demo's prompt: a terminal, one line at a time; `before`
    runs as the first line is read (the user changing files meanwhile)."""

    def __init__(self, lines: list[str], before=None) -> None:
        super().__init__("".join(f"{line}\n" for line in lines))
        self.before = before

    def isatty(self) -> bool:
        return True

    def readline(self, *args) -> str:
        if self.before is not None:
            self.before, before = None, self.before
            before()
        return super().readline(*args)


def test_demo_queries_take_minus_words_and_skip_deleted_files(
    tmp_path, app_paths, capsys, monkeypatch
):
    """The demo's prompt runs the same queries as `search` and the window (was: -words
    searched as plain text, and deleted files listed)."""
    from visualsearch.core.settings import AppPaths

    paths = AppPaths(tmp_path / "data", app_paths.cache_dir)
    sample = paths.sample_dir
    chelsea = sample / "photos" / "chelsea.png"

    def delete_the_copies() -> None:
        for copy in (sample / "copies").glob("chelsea-*"):
            copy.unlink()

    typed = Typed(["-cat", str(chelsea), ""], before=delete_the_copies)
    monkeypatch.setattr(sys, "stdin", typed)
    code = main(["demo", "--model", "builtin"], paths=paths)
    out, err = capsys.readouterr()
    assert code == 0, err
    prompt = out[out.index("query> ") :]
    assert "a query needs words to look for, not only -words" in prompt
    listed = prompt[prompt.index("Images like chelsea.png") :].splitlines()[1:9]
    assert len(listed) == 8 and not any("chelsea" in line for line in listed)
    assert "copies/chelsea-" in out[: out.index("query> ")]  # they were there before


def test_models_lists_each_model_with_its_size_and_whether_it_is_here(
    app_paths, capsys, monkeypatch, tmp_path
):
    from huggingface_hub import constants

    from visualsearch.core.encoders.catalog import CLIP_MODELS
    from visualsearch.core.encoders.clip import hub_files

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    code, out, _ = run_cli(capsys, app_paths, "models", "--json")
    rows = json.loads(out)
    assert code == 0 and [r["spec"] for r in rows] == ["builtin"] + [m.spec for m in CLIP_MODELS]
    assert rows[0]["cached"] and rows[0]["default"]
    assert [r["download_mb"] for r in rows[1:]] == [m.download_mb for m in CLIP_MODELS]
    assert not any(r["cached"] or r["default"] for r in rows[1:])

    first = CLIP_MODELS[0]  # its weights land in the Hugging Face cache, as a download does
    repo, files = hub_files(first.arch, first.tag)
    cached = tmp_path / "hub" / f"models--{repo.replace('/', '--')}"
    (cached / "refs").mkdir(parents=True)
    (cached / "refs" / "main").write_text("abc123")
    weights = cached / "snapshots" / "abc123" / files[0]
    weights.parent.mkdir(parents=True)
    weights.write_bytes(b"weights")
    code, out, _ = run_cli(capsys, app_paths, "models", "--json")
    rows = json.loads(out)
    assert rows[1]["cached"] and rows[1]["weights"] == str(weights) and rows[1]["default"]
    assert not rows[0]["default"] and not any(r["cached"] for r in rows[2:])
    code, out, _ = run_cli(capsys, app_paths, "models")
    lines = out.splitlines()
    assert code == 0 and "--model SPEC" in lines[0]
    assert lines[1].split()[:3] == ["builtin", "here", "offline,"]
    assert lines[2].split()[:3] == ["*", first.spec, "here"]
    assert f"{CLIP_MODELS[2].download_mb:,} MB to download" in lines[4]
    assert "models" in build_parser().format_help()
