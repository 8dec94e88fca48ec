//! The operations layer sits below every interface: it never depends on axum or on the HTTP
//! API, so the portal and the command line can call it as the API does.

use std::path::Path;

#[test]
fn ops_never_imports_axum_or_web() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let manifest = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
    for forbidden in ["axum", "psabridge-web", "tower", "hyper", "http ="] {
        assert!(
            !manifest.contains(forbidden),
            "crates/ops/Cargo.toml depends on {forbidden}"
        );
    }
    let mut sources = vec![root.join("src")];
    let mut checked = 0;
    while let Some(dir) = sources.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                sources.push(path);
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            for forbidden in ["axum::", "psabridge_web", "StatusCode"] {
                assert!(
                    !text.contains(forbidden),
                    "{} names {forbidden}",
                    path.display()
                );
            }
            checked += 1;
        }
    }
    assert!(checked > 5, "the sources were not found ({checked} files)");
}
