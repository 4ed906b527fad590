"""observatoire: an observatory of access to French prefectures' appointment booking."""

__version__ = "0.1.0"
