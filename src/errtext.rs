//! Error text that says each thing once: the path is named by the caller,
//! so a cause must not repeat it (or name a file the user never asked for).

use std::io;

/// The cause in `e` without tempfile's suffix: tempfile wraps the OS error
/// in a private type whose text appends ` at path "<the temporary file>"`,
/// a name the user never gave, after a path the caller names already.
pub fn io_cause(e: &io::Error) -> String {
    let text = e.to_string();
    match text.rfind(" at path \"") {
        Some(i) if text.ends_with('"') => text[..i].to_string(),
        _ => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_temporary_file_error_says_the_os_error_alone() {
        let e = tempfile::Builder::new()
            .tempfile_in("/nonexistent/dir")
            .unwrap_err();
        assert!(e.to_string().contains("at path"), "{e}");
        assert_eq!(io_cause(&e), "No such file or directory (os error 2)");
        let plain = io::Error::from_raw_os_error(13);
        assert_eq!(io_cause(&plain), plain.to_string());
    }
}
