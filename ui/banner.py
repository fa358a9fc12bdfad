"""The error banner: a dismissable line at the top of the main window, with the details behind a
button for unexpected errors."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QMessageBox, QPushButton


class Banner(QFrame):
    """A dismissable line at the top of the window for errors and important notes."""

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self.setObjectName("banner")
        self.setStyleSheet("#banner { background: #5a1f1f; border-radius: 4px; } "
                           "#banner QLabel { color: #ffe; }")
        self.text = QLabel("")
        self.text.setWordWrap(True)
        self.text.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.details_button = QPushButton("Details…")
        self.details_button.clicked.connect(self._details)
        close = QPushButton("Dismiss")
        close.clicked.connect(self.hide)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(8, 4, 8, 4)
        layout.addWidget(self.text, 1)
        layout.addWidget(self.details_button)
        layout.addWidget(close)
        self.details = ""
        self.hide()

    def show_error(self, info: Any) -> None:
        message = str(info)
        self.details = getattr(info, "details", "") or ""
        user = getattr(info, "user_facing", True)
        self.text.setText(("⚠ " if user else "⚠ Unexpected error: ") + message)
        self.details_button.setVisible(bool(self.details) and not user)
        self.show()

    def _details(self) -> None:
        box = QMessageBox(QMessageBox.Warning, "Error details", self.text.text(),
                          QMessageBox.Close, self)
        box.setDetailedText(self.details)
        box.exec()
