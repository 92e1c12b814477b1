//! `image/<driver>/repositories.json`: tags and digest references
//! (moby `daemon/internal/refstore/store.go`).

use crate::ids::ImageId;
use crate::store::fsread::read_opt;
use crate::store::{Anomaly, AnomalyKind, Reference};
use serde_json::Value;
use std::path::Path;

/// Reads the reference store. A missing file is an empty store (the daemon
/// creates one); a malformed file is an anomaly: the daemon would refuse to start.
pub fn read(path: &Path) -> (Vec<Reference>, Vec<Anomaly>) {
    let mut anomalies = Vec::new();
    let bytes = match read_opt(path) {
        Ok(Some(b)) => b,
        Ok(None) => return (Vec::new(), anomalies),
        Err(e) => {
            anomalies.push(anomaly(path, format!("cannot read: {e}")));
            return (Vec::new(), anomalies);
        }
    };
    let refs = parse(&bytes, path, &mut anomalies);
    (refs, anomalies)
}

pub fn parse(bytes: &[u8], path: &Path, anomalies: &mut Vec<Anomaly>) -> Vec<Reference> {
    let v: Value = match serde_json::from_slice(bytes) {
        Ok(v) => v,
        Err(e) => {
            anomalies.push(anomaly(
                path,
                format!("invalid JSON ({e}); the daemon will not start on this root"),
            ));
            return Vec::new();
        }
    };
    let Some(repos) = v.get("Repositories") else {
        // The daemon unmarshals into a struct: a missing key is an empty store.
        if !v.is_object() {
            anomalies.push(anomaly(path, "not a JSON object".into()));
        }
        return Vec::new();
    };
    let Some(repos) = repos.as_object() else {
        if !repos.is_null() {
            anomalies.push(anomaly(path, "\"Repositories\" is not an object".into()));
        }
        return Vec::new();
    };
    let mut out = Vec::new();
    for (repo, entries) in repos {
        let Some(entries) = entries.as_object() else {
            anomalies.push(anomaly(
                path,
                format!("repository {repo:?} is not an object"),
            ));
            continue;
        };
        for (reference, id) in entries {
            match id.as_str().map(ImageId::parse) {
                Some(Ok(image)) => out.push(Reference {
                    repository: repo.clone(),
                    reference: reference.clone(),
                    image,
                }),
                _ => anomalies.push(anomaly(
                    path,
                    format!("reference {reference:?} has an invalid image ID {id}"),
                )),
            }
        }
    }
    out
}

fn anomaly(path: &Path, message: String) -> Anomaly {
    Anomaly {
        kind: AnomalyKind::Refs,
        path: path.to_path_buf(),
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef";

    #[test]
    fn parses_tags_and_digests() {
        let json = format!(
            r#"{{"Repositories":{{"alpine":{{"alpine:3.20":"{ID}","alpine@sha256:{}":"{ID}"}}}}}}"#,
            "1".repeat(64)
        );
        let mut a = Vec::new();
        let refs = parse(json.as_bytes(), Path::new("r.json"), &mut a);
        assert!(a.is_empty());
        assert_eq!(refs.len(), 2);
        assert_eq!(refs.iter().filter(|r| r.is_digest()).count(), 1);
        assert!(refs.iter().all(|r| r.repository == "alpine"));
    }

    #[test]
    fn truncated_and_invalid_files_are_anomalies_naming_the_file() {
        let mut a = Vec::new();
        let refs = parse(
            br#"{"Repositories":{"alpine":{"alpine:3"#,
            Path::new("/x/repositories.json"),
            &mut a,
        );
        assert!(refs.is_empty());
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].path, Path::new("/x/repositories.json"));
        assert!(a[0].message.contains("invalid JSON"));

        let mut a = Vec::new();
        let refs = parse(
            br#"{"Repositories":{"a":{"a:1":"sha256:nothex"},"b":7}}"#,
            Path::new("r"),
            &mut a,
        );
        assert!(refs.is_empty());
        assert_eq!(a.len(), 2);
    }

    #[test]
    fn missing_file_is_an_empty_store() {
        let (refs, a) = read(Path::new("/nonexistent/repositories.json"));
        assert!(refs.is_empty() && a.is_empty());
    }
}
