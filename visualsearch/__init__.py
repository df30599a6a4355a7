"""visualsearch: search, browse and sort a folder of images by what they show."""

__version__ = "0.1.0"
