//! tar-split.json.gz parsing (format doc §9). Being written.
