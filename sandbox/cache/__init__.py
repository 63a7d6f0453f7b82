"""The cache build (trusted side): task caches keyed by content, the fine-tune cache, text
encoders, weak teachers, splits, progress and thread use. Gold labels live in the private store."""
