"""The Report tab follows the app's palette and draws its charts."""

from __future__ import annotations

from PySide6.QtCore import QUrl
from PySide6.QtGui import QColor, QPalette, QTextDocument
from PySide6.QtWidgets import QTextBrowser

from ui.panels import report_html, show_themed


def test_report_is_readable_in_a_dark_palette_with_charts_drawn(qtbot, project_dir):
    from curator.project import Project

    with Project.open(project_dir) as p:
        p.add_label("cat")
        p.label_items([r["id"] for r in p.items()][:3], "cat")
        html = report_html(p.report())
    assert "<svg" in html and "#222" in html
    browser = QTextBrowser()
    qtbot.addWidget(browser)
    palette = browser.palette()
    palette.setColor(QPalette.Text, QColor("#eeeeee"))
    palette.setColor(QPalette.Base, QColor("#202020"))
    browser.setPalette(palette)
    charts = show_themed(browser, html)
    assert charts >= 1
    shown = browser.toHtml()
    assert "#222" not in shown.replace("#2222", "")
    assert "chart://0" in shown
    image = browser.document().resource(QTextDocument.ImageResource, QUrl("chart://0"))
    assert image is not None and not image.isNull() and image.width() > 50
    # The page's text takes the palette's light colour.
    assert "#eeeeee" in html_shown(browser)


def html_shown(browser):
    return browser.toHtml().lower()
