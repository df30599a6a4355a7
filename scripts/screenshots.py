"""Screenshots of the real window for the README, on a virtual X screen.

    xvfb-run -s "-screen 0 1400x900x24" python scripts/screenshots.py docs/screenshots

Opens the sample collection with the built-in model, then captures the window from
the X screen: all images, the viewer, a similar-image result, a text search result,
sorting with the folder filter, the map, duplicates side by side, the Sort tab's
review queue and its evaluation report, and the library.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path

from PySide6.QtCore import QEventLoop, QSettings, QTimer
from PySide6.QtWidgets import QApplication

from visualsearch.core.folder import ModelChoice
from visualsearch.core.library import Library
from visualsearch.core.query import TextQuery
from visualsearch.core.settings import AppPaths
from visualsearch.qt.app import create_window
from visualsearch.qt.library_dialog import LibraryDialog


def settle(app: QApplication, seconds: float = 1.5) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        app.processEvents()
        time.sleep(0.02)


def wait(signal, seconds: float = 300) -> None:
    loop = QEventLoop()
    signal.connect(loop.quit)
    QTimer.singleShot(int(seconds * 1000), loop.quit)
    loop.exec()


def main() -> None:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "docs/screenshots")
    out.mkdir(parents=True, exist_ok=True)
    app = QApplication(sys.argv[:1])
    app.setApplicationName("visualsearch")
    home = Path(tempfile.mkdtemp(prefix="vs-shots-"))
    window = create_window(
        AppPaths.default(), QSettings(str(home / "settings.ini"), QSettings.Format.IniFormat)
    )
    window.resize(1360, 860)
    window.move(20, 20)
    window.show()

    def shot(name: str) -> None:
        settle(app)
        app.primaryScreen().grabWindow(0).copy(window.frameGeometry()).save(str(out / name))
        print(out / name)

    shot("welcome.png")
    window.open_sample()
    wait(window.collection.indexing_finished)
    wait(window.results.engine_ready, 60)
    shot("all-images.png")

    row = next(
        r
        for r in range(window.model.rowCount())
        if window.model.item(r).path.name == "astronaut.png"
    )
    window.grid.setCurrentIndex(window.model.index(row))
    window.results.open_viewer(window.model.index(row))
    settle(app, 3)  # decoded at full size
    shot("viewer.png")
    window.viewer.close_viewer()

    window.results.find_similar(window.model.item(row).path)
    wait(window.results.results_shown)
    shot("similar.png")

    window.search_box.setText("a cup of coffee")
    window.results.run_query(TextQuery("a cup of coffee"))
    wait(window.results.results_shown)
    shot("text-search.png")

    window.results.show_all()
    area = window.results_area
    area.folders.select_folder("photos")
    window.results.sort_by("size", descending=True)
    shot("sort-and-filter.png")
    area.folders.select_folder("")
    window.results.sort_by("folder")

    window.tabs.setCurrentWidget(window.map_page)
    wait(window.maps.map_ready, 300)
    cmap = window.maps.cmap
    window.maps.show_cluster(int(cmap.labels[cmap.paths.index("photos/chelsea.png")]))
    shot("map.png")

    window.tabs.setCurrentWidget(window.duplicates_page)
    window.cleanup.find_duplicates(window.duplicates_page.threshold())
    wait(window.cleanup.duplicates_ready, 60)
    page = window.duplicates_page
    page.tree.setCurrentItem(page.tree.topLevelItem(0))  # the group side by side
    settle(app, 3)
    shot("duplicates.png")

    # sorting by example: three labels with three photos each, the proposals for the rest
    window.tabs.setCurrentWidget(window.sort_page)
    sorting = window.sorting
    examples = {
        "animals": [
            "imagenet/imagenet_00_243.jpg",
            "imagenet/imagenet_15_99.jpg",
            "photos/chelsea.png",
        ],
        "vehicles": [
            "imagenet/imagenet_06_609.jpg",
            "photos/motorcycle_left.png",
            "photos/rocket.jpg",
        ],
        "food and drink": [
            "photos/coffee.png",
            "imagenet/imagenet_04_949.jpg",
            "imagenet/imagenet_03_990.jpg",
        ],
    }
    for label in sorting.book.all():  # labels an earlier run of this script left
        sorting.book.delete(label.id)
    for name, rels in examples.items():
        sorting.label_paths(rels, sorting.book.ensure(name).id)
    sorting.propose()
    deadline = time.monotonic() + 60
    while not (sorting.queue and sorting.queue.items) and time.monotonic() < deadline:
        settle(app, 0.2)
    window.sort_page.setFocus()
    settle(app, 3)  # the preview and the strip's thumbnails
    shot("sort-review.png")
    sorting.accept_all_sure()  # more examples for the report
    window.evaluation.evaluate()
    deadline = time.monotonic() + 120
    while window.evaluation.report is None and time.monotonic() < deadline:
        settle(app, 0.2)
    settle(app)
    report = window.evaluation.report
    app.primaryScreen().grabWindow(0).copy(report.frameGeometry()).save(str(out / "evaluation.png"))
    print(out / "evaluation.png")
    report.close()

    # the library: the sample collection and a drive that is unplugged (a library of its
    # own, under the temporary home: the user's library is not touched)
    drive = home / "USB drive" / "Holiday photos"
    drive.mkdir(parents=True)
    for photo in sorted((window.collection.target.folder / "photos").glob("*"))[:9]:
        shutil.copy2(photo, drive / photo.name)
    library = Library(home / "library", window.collection.store_base)
    library.add(window.collection.target.folder)
    library.add(drive)
    library.index(window.ctx.encoders.get(ModelChoice("builtin")), ModelChoice("builtin"))
    drive.parent.rename(home / "unplugged")
    builtin = window.ctx.encoders.get(ModelChoice("builtin"))
    dialog = LibraryDialog(library, window.pool, lambda: builtin, window)
    dialog.show()
    dialog.tree.setCurrentItem(dialog.tree.topLevelItem(0))
    dialog.search_box.setText("a cat")
    dialog.search()
    deadline = time.monotonic() + 60
    while not dialog.hits.count() and time.monotonic() < deadline:
        settle(app, 0.2)
    settle(app)
    app.primaryScreen().grabWindow(0).copy(dialog.frameGeometry()).save(str(out / "library.png"))
    print(out / "library.png")
    dialog.close()
    window.close()


if __name__ == "__main__":
    main()
