//! Small-file reads shared by the area readers. They return the error text a
//! person needs; callers turn it into an `Anomaly` naming the file.

use std::fs;
use std::io::ErrorKind;
use std::path::Path;

/// The file's bytes, `Ok(None)` if it does not exist, `Err(text)` otherwise.
pub fn read_opt(path: &Path) -> Result<Option<Vec<u8>>, String> {
    match fs::read(path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e.to_string()),
    }
}

/// The file as UTF-8 text, `Ok(None)` if missing.
pub fn read_text_opt(path: &Path) -> Result<Option<String>, String> {
    match read_opt(path)? {
        None => Ok(None),
        Some(b) => String::from_utf8(b)
            .map(Some)
            .map_err(|_| "not UTF-8 text".to_string()),
    }
}

/// A directory's entries, sorted by name; non-UTF-8 names are returned
/// separately so they can be reported instead of silently dropped.
pub struct Listing {
    pub names: Vec<String>,
    /// Whether each entry of `names` is a real directory (not a symlink to one),
    /// from the directory listing itself, so no extra stat is needed.
    pub is_dir: Vec<bool>,
    pub odd_names: Vec<std::ffi::OsString>,
}

pub fn list_dir(path: &Path) -> std::io::Result<Listing> {
    let mut entries = Vec::new();
    let mut odd_names = Vec::new();
    for e in fs::read_dir(path)? {
        let e = e?;
        // d_type from getdents; falls back to an lstat where the fs lacks it.
        let is_dir = e.file_type().map(|t| t.is_dir()).unwrap_or(false);
        match e.file_name().into_string() {
            Ok(s) => entries.push((s, is_dir)),
            Err(o) => odd_names.push(o),
        }
    }
    entries.sort_unstable();
    let (names, is_dir) = entries.into_iter().unzip();
    Ok(Listing {
        names,
        is_dir,
        odd_names,
    })
}

/// Like `list_dir`, but a missing directory is an empty listing.
pub fn list_dir_opt(path: &Path) -> std::io::Result<Listing> {
    match list_dir(path) {
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(Listing {
            names: Vec::new(),
            is_dir: Vec::new(),
            odd_names: Vec::new(),
        }),
        other => other,
    }
}
