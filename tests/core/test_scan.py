import os

from visualsearch.core.scan import scan_folder


def _touch(path, data=b"x"):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def test_finds_images_recursively_and_skips_the_rest(tmp_path):
    _touch(tmp_path / "a.jpg")
    _touch(tmp_path / "sub" / "b.PNG")
    _touch(tmp_path / "sub" / "deeper" / "c.webp")
    _touch(tmp_path / "sub" / "notes.txt")
    _touch(tmp_path / ".hidden" / "d.jpg")
    _touch(tmp_path / ".e.jpg")
    _touch(tmp_path / "猫の写真" / "ünïcödé ✓.jpeg")
    result = scan_folder(tmp_path)
    assert sorted(f.path for f in result.files) == [
        "a.jpg",
        "sub/b.PNG",
        "sub/deeper/c.webp",
        "猫の写真/ünïcödé ✓.jpeg",
    ]
    assert all(f.size == 1 and f.mtime_ns > 0 for f in result.files)


def test_symlink_loops_end_and_are_reported(tmp_path):
    _touch(tmp_path / "sub" / "a.jpg")
    os.symlink("..", tmp_path / "sub" / "up")
    os.symlink(tmp_path / "sub", tmp_path / "again")
    result = scan_folder(tmp_path)
    assert [f.path for f in result.files] == ["sub/a.jpg"]
    assert any("loop" in reason for _, reason in result.problems)


def test_linked_folder_outside_is_followed(tmp_path):
    outside = tmp_path / "outside"
    _touch(outside / "x.jpg")
    root = tmp_path / "root"
    root.mkdir()
    os.symlink(outside, root / "linked")
    assert [f.path for f in scan_folder(root).files] == ["linked/x.jpg"]


def test_special_files_and_broken_links_are_reported(tmp_path):
    os.mkfifo(tmp_path / "pipe.jpg")
    os.symlink(tmp_path / "nowhere.jpg", tmp_path / "broken.jpg")
    result = scan_folder(tmp_path)
    assert result.files == []
    reasons = dict(result.problems)
    assert "regular file" in reasons["pipe.jpg"]
    assert "broken" in reasons["broken.jpg"]


def test_excluded_store_folder_is_skipped(tmp_path):
    _touch(tmp_path / "a.jpg")
    _touch(tmp_path / "store" / "thumb.jpg")
    result = scan_folder(tmp_path, exclude=[tmp_path / "store"])
    assert [f.path for f in result.files] == ["a.jpg"]


def _deep_file(root, depth: int = 24, data: bytes = b"x") -> str:
    """A file under `depth` folders of 200-character names (deeper than PATH_MAX), made
    through directory descriptors; returns its path relative to `root`."""
    name = "d" * 200
    fd = os.open(root, os.O_RDONLY)
    try:
        for _ in range(depth):
            os.mkdir(name, dir_fd=fd)
            fd, parent = os.open(name, os.O_RDONLY, dir_fd=fd), fd
            os.close(parent)
        out = os.open("deep.jpg", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd)
        os.write(out, data)
        os.close(out)
    finally:
        os.close(fd)
    return "/".join([name] * depth + ["deep.jpg"])


def test_files_deeper_than_path_max_are_found_and_readable(tmp_path):
    from visualsearch.core.imageio import read_bytes

    rel = _deep_file(tmp_path, data=b"deep content")
    assert len(os.fsencode(str(tmp_path / rel))) > os.pathconf("/", "PC_PATH_MAX")
    result = scan_folder(tmp_path)
    assert [f.path for f in result.files] == [rel], result.problems
    assert read_bytes(tmp_path / rel) == b"deep content"


def test_names_ending_in_a_space_or_dot_are_images(tmp_path):
    _touch(tmp_path / "photo.jpg ")
    _touch(tmp_path / "scan.png.")
    _touch(tmp_path / "notes.txt ")
    assert [f.path for f in scan_folder(tmp_path).files] == ["photo.jpg ", "scan.png."]


def test_hidden_folders_and_images_are_reported_once_each(tmp_path):
    for name in ("a.jpg", "b.jpg", "deeper/c.jpg"):
        _touch(tmp_path / ".thumbnails" / name)
    _touch(tmp_path / "sub" / ".git" / "config")
    _touch(tmp_path / "sub" / ".secret.jpg")
    _touch(tmp_path / "sub" / "._photo.jpg")  # macOS metadata companion: not an image
    _touch(tmp_path / ".DS_Store")
    _touch(tmp_path / "store" / ".cache" / "x.jpg")
    _touch(tmp_path / "photo.jpg")
    result = scan_folder(tmp_path, exclude=[tmp_path / "store"])
    assert [f.path for f in result.files] == ["photo.jpg"]
    assert result.problems == [
        (".thumbnails", "hidden folder (names starting with a dot are skipped)"),
        ("sub/.git", "hidden folder (names starting with a dot are skipped)"),
        ("sub/.secret.jpg", "hidden file (names starting with a dot are skipped)"),
    ]


def test_a_hidden_store_inside_the_collection_is_not_reported(tmp_path):
    _touch(tmp_path / ".visualsearch" / "thumb.jpg")
    _touch(tmp_path / "a.jpg")
    result = scan_folder(tmp_path, exclude=[tmp_path / ".visualsearch"])
    assert [f.path for f in result.files] == ["a.jpg"] and result.problems == []
