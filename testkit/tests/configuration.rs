//! `.env.example` documents exactly the variables the services read.

use std::collections::BTreeSet;
use std::path::Path;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
}

/// Variable names in `.env.example`, set (`NAME=`) or shown commented
/// (`# NAME=`): those of the deployment section, and the others.
fn documented() -> (BTreeSet<String>, BTreeSet<String>) {
    let text = std::fs::read_to_string(root().join(".env.example")).expect(".env.example");
    let (deployment, services) = text
        .split_once("# --- Deployment (read by deploy.sh)")
        .and_then(|(head, rest)| {
            rest.split_once("\n# ---")
                .map(|(deploy, tail)| (deploy.to_owned(), format!("{head}{tail}")))
        })
        .expect(".env.example has a deployment section");
    (names(&deployment), names(&services))
}

fn names(text: &str) -> BTreeSet<String> {
    text.lines()
        .map(|l| l.trim_start_matches('#').trim())
        .filter_map(|l| l.split_once('='))
        .map(|(name, _)| name.to_owned())
        .filter(|n| {
            !n.is_empty()
                && n.bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
        })
        .collect()
}

/// Variable names the services read through `Env` or `std::env::var`.
/// Every `.rs` file under `dir`, subdirectories (`src/bin`) included.
fn rust_sources(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).expect("a source directory") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            found.extend(rust_sources(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            found.push(path);
        }
    }
    found
}

fn read_by_services() -> BTreeSet<String> {
    let readers = [
        ".string(",
        ".parse(",
        ".int_in(",
        ".label(",
        ".secret(",
        "std::env::var(",
    ];
    let mut names = BTreeSet::new();
    for krate in ["common", "vote", "worker", "result"] {
        for path in rust_sources(&root().join(krate).join("src")) {
            let source = std::fs::read_to_string(&path).expect("source");
            // Unit tests read made-up variables.
            let source = source.split("#[cfg(test)]").next().unwrap_or_default();
            for reader in readers {
                for (at, _) in source.match_indices(reader) {
                    let rest = source[at + reader.len()..].trim_start();
                    let Some(rest) = rest.strip_prefix('"') else {
                        continue;
                    };
                    let name: String = rest.chars().take_while(|c| *c != '"').collect();
                    if name.len() > 1 && name.chars().all(|c| c.is_ascii_uppercase() || c == '_') {
                        names.insert(name);
                    }
                }
            }
        }
    }
    names
}

#[test]
fn deployment_variables_are_read_by_deploy_sh() {
    let (deployment, _) = documented();
    let script = std::fs::read_to_string(root().join("lib/deploy.sh")).expect("lib/deploy.sh");
    let word = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
    let mentions = |name: &str| {
        script.match_indices(name).any(|(at, _)| {
            !word(script[..at].chars().next_back())
                && !word(script[at + name.len()..].chars().next())
        })
    };
    let unread: Vec<_> = deployment.iter().filter(|n| !mentions(n)).collect();
    assert!(deployment.len() >= 5, "{deployment:?}");
    assert!(
        unread.is_empty(),
        "documented for deployment, never read by lib/deploy.sh: {unread:?}"
    );
}

#[test]
fn env_example_documents_every_variable_and_nothing_else() {
    let (_, documented) = documented();
    let read = read_by_services();
    assert!(read.len() > 15, "the scan found the readers: {read:?}");
    // RUST_LOG is the conventional alias of LOG_LEVEL, and HOSTNAME is set by
    // the container runtime: neither is ours to document.
    let read: BTreeSet<_> = read
        .into_iter()
        .filter(|n| n != "RUST_LOG" && n != "HOSTNAME")
        .collect();
    let undocumented: Vec<_> = read.difference(&documented).collect();
    let unused: Vec<_> = documented.difference(&read).collect();
    assert!(
        undocumented.is_empty(),
        "read but not in .env.example: {undocumented:?}"
    );
    assert!(
        unused.is_empty(),
        "in .env.example but read by no service: {unused:?}"
    );
}
