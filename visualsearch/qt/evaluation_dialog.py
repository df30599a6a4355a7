""" "Which model fits my photos": each model's figures on the labelled images as bars and
a table, and the chosen model's confusion matrix (core/model_evaluation.py does the
measuring, in the pool; this only shows)."""

from __future__ import annotations

from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QColor, QPainter, QPen
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from visualsearch.core.model_evaluation import Evaluation, ModelReport
from visualsearch.core.names import human_duration, printable

MODEL_COLOURS = ("#0072b2", "#e69f00", "#009e73", "#cc79a7", "#56b4e9", "#d55e00")


def figures(e: Evaluation) -> dict[str, float]:
    """The bars of one model: accuracy-like figures from 0 to 1."""
    found = {"nearest neighbour": e.nearest_neighbour}
    found.update({f"{k}-shot": mean for k, (mean, _, _) in sorted(e.few_shot.items())})
    found["mAP@10"] = e.map_at_10
    return found


class BarChart(QWidget):
    """Grouped bars: one group per figure, one bar per model, 0 to 1."""

    def __init__(self) -> None:
        super().__init__()
        self.reports: list[ModelReport] = []
        self.setMinimumHeight(220)

    def set_reports(self, reports: list[ModelReport]) -> None:
        self.reports = reports
        self.update()

    def paintEvent(self, _event) -> None:
        if not self.reports:
            return
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        names = list(figures(self.reports[0].evaluation))
        left, top, bottom = 36, 24, 36
        width, height = self.width() - left - 8, self.height() - top - bottom
        painter.setPen(QPen(QColor("#888888")))
        for tick in (0.0, 0.5, 1.0):
            y = top + height * (1 - tick)
            painter.drawLine(left, int(y), left + width, int(y))
            painter.drawText(
                QRectF(0, y - 8, left - 4, 16), Qt.AlignmentFlag.AlignRight, f"{tick:.1f}"
            )
        group = width / len(names)
        bar = group * 0.8 / len(self.reports)
        for g, name in enumerate(names):
            x0 = left + g * group + group * 0.1
            painter.setPen(QPen(self.palette().text().color()))
            painter.drawText(
                QRectF(left + g * group, top + height + 4, group, 18),
                Qt.AlignmentFlag.AlignCenter,
                name,
            )
            for m, report in enumerate(self.reports):
                value = figures(report.evaluation).get(name, float("nan"))
                if value != value:  # nan: not measured for this model
                    continue
                colour = QColor(MODEL_COLOURS[m % len(MODEL_COLOURS)])
                rect = QRectF(x0 + m * bar, top + height * (1 - value), bar * 0.9, height * value)
                painter.fillRect(rect, colour)
                painter.drawText(
                    QRectF(rect.x() - 6, rect.y() - 16, rect.width() + 12, 14),
                    Qt.AlignmentFlag.AlignCenter,
                    f"{value:.2f}",
                )
        for m, report in enumerate(self.reports):  # the legend
            colour = QColor(MODEL_COLOURS[m % len(MODEL_COLOURS)])
            painter.fillRect(QRectF(left + m * 220, 4, 12, 12), colour)
            painter.drawText(
                QRectF(left + m * 220 + 16, 2, 200, 16), Qt.AlignmentFlag.AlignLeft, report.model
            )
        painter.end()


class EvaluationDialog(QDialog):
    def __init__(self, reports: list[ModelReport], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Which model fits my photos")
        self.reports = reports
        first = reports[0].evaluation
        self.summary = QLabel(
            f"From {first.images} labelled images of {len(first.labels)} labels. "
            "Nearest neighbour: each image labelled as its most similar other image. "
            "k-shot: the proposals' classifier with k examples per label (mean of repeated "
            "draws). mAP@10: how many of an image's 10 nearest share its label."
        )
        self.summary.setWordWrap(True)
        self.chart = BarChart()
        self.chart.set_reports(reports)
        self.table = self._figures_table()
        self.choice = QComboBox()
        for report in reports:
            self.choice.addItem(report.model)
        self.choice.currentIndexChanged.connect(self._show_confusion)
        self.confusion = QTableWidget()
        self.confused = QLabel()
        self.confused.setWordWrap(True)
        row = QHBoxLayout()
        row.addWidget(QLabel("Confusion matrix (rows: the label, columns: as labelled) of"))
        row.addWidget(self.choice, 1)
        layout = QVBoxLayout(self)
        layout.addWidget(self.summary)
        layout.addWidget(self.chart, 2)
        layout.addWidget(self.table, 1)
        layout.addLayout(row)
        layout.addWidget(self.confusion, 2)
        layout.addWidget(self.confused)
        self.resize(900, 760)
        self._show_confusion(0)

    def _figures_table(self) -> QTableWidget:
        names = list(figures(self.reports[0].evaluation))
        heads = ["model", *names, "images/s here", "whole folder"]
        table = QTableWidget(len(self.reports), len(heads))
        table.setHorizontalHeaderLabels(heads)
        table.verticalHeader().hide()
        for r, report in enumerate(self.reports):
            e = report.evaluation
            cells = [report.model]
            for name in names:
                cells.append(f"{figures(e).get(name, float('nan')):.2f}")
            speed = report.images_per_second
            cells.append("—" if speed is None else f"{speed:.0f}")
            cells.append(human_duration(report.projected_seconds))
            for c, text in enumerate(cells):
                table.setItem(r, c, QTableWidgetItem(text))
            for k, (mean, spread, repeats) in e.few_shot.items():
                c = heads.index(f"{k}-shot")
                table.item(r, c).setToolTip(f"{mean:.3f} ± {spread:.3f} over {repeats} draws")
        table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        return table

    def _show_confusion(self, index: int) -> None:
        e = self.reports[index].evaluation
        n = len(e.labels)
        self.confusion.clear()
        self.confusion.setRowCount(n)
        self.confusion.setColumnCount(n)
        names = [printable(x) for x in e.labels]
        self.confusion.setHorizontalHeaderLabels(names)
        self.confusion.setVerticalHeaderLabels(names)
        for r in range(n):
            total = max(int(e.confusion[r].sum()), 1)
            for c in range(n):
                count = int(e.confusion[r, c])
                item = QTableWidgetItem(str(count))
                share = count / total
                base = QColor("#009e73" if r == c else "#d55e00")
                base.setAlphaF(min(1.0, share) * 0.8)
                item.setBackground(base)
                item.setTextAlignment(Qt.AlignmentFlag.AlignCenter)
                self.confusion.setItem(r, c, item)
        pairs = ", ".join(f"{printable(a)} ↔ {printable(b)} ({k})" for a, b, k in e.confused_pairs)
        self.confused.setText(
            f"Most confused: {pairs}" if pairs else "No label confused with another."
        )
