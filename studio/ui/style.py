"""The window's Qt style sheet: quiet colours, message banners by level, a clear primary button.

Kept as a Python string rather than a .qss file so it travels inside the package without
package-data configuration.
"""

STYLE_SHEET = """
QWidget#banner[level="info"] { background: #e8f1fb; border: 1px solid #b6d0ee; border-radius: 4px; }
QWidget#banner[level="warning"] { background: #fff4de; border: 1px solid #f0c674; border-radius: 4px; }
QWidget#banner[level="error"] { background: #fde8e8; border: 1px solid #ec9a9a; border-radius: 4px; }
QLabel#hint { color: #5f6368; }
QLabel#heading { font-weight: bold; margin-top: 4px; }
QLabel#title { font-size: 18pt; font-weight: bold; }
QLabel#big { font-size: 12pt; font-weight: bold; }
QLabel#path { color: #3c4043; padding-left: 6px; }
QLabel#thumb { border: 1px solid #d0d0d0; background: #fafafa; }
QFrame#welcome { background: #f7f9fc; border: 1px solid #d8dee8; border-radius: 8px; padding: 16px; }
QPushButton#primary { background: #1a73e8; color: white; font-weight: bold; padding: 6px 18px;
                      border-radius: 4px; border: 1px solid #1666cc; }
QPushButton#primary:disabled { background: #a8c4ec; border-color: #a8c4ec; }
QPushButton#primary:hover { background: #1666cc; }
QListWidget#nav { background: #f1f3f6; border: none; font-size: 11pt; padding-top: 8px; outline: 0; }
QListWidget#nav::item { padding: 10px 12px; border-left: 3px solid transparent; }
QListWidget#nav::item:selected { background: #dde8f8; color: #0b3d91; border-left: 3px solid #1a73e8; }
QGroupBox { font-weight: bold; margin-top: 10px; }
QGroupBox::title { subcontrol-origin: margin; left: 8px; padding: 0 4px; }
"""
