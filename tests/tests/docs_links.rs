//! Relative links and images in `README.md` and `docs/*.md` point at files that exist.

use std::path::{Path, PathBuf};

use servesim_e2e::repo_root;

/// Pages other parts of the project write; while one is absent its links are reported, not failed.
const PAGES_WRITTEN_ELSEWHERE: [&str; 5] = [
    "docs/cli.md",
    "docs/outputs.md",
    "docs/predictor.md",
    "docs/profiler.md",
    "docs/workloads.md",
];

/// Targets of `](target)` links in markdown, without anchors; external and anchor-only links skipped.
fn relative_links(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find("](") {
        rest = &rest[i + 2..];
        let Some(end) = rest.find(')') else { break };
        // `[text](path "title")`: the path is the first word; anchors are not checked.
        let target = rest[..end]
            .split_whitespace()
            .next()
            .unwrap_or("")
            .split('#')
            .next()
            .unwrap_or("");
        if !target.is_empty() && !target.contains("://") && !target.starts_with("mailto:") {
            out.push(target.to_string());
        }
        rest = &rest[end..];
    }
    out
}

fn pages() -> Vec<PathBuf> {
    let root = repo_root();
    let mut files = vec![root.join("README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root.join("docs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    files.extend(docs);
    files
}

#[test]
fn links_resolve() {
    let root = repo_root();
    let mut broken = Vec::new();
    let mut count = 0;
    for page in pages() {
        let text = std::fs::read_to_string(&page).unwrap();
        let base = page.parent().unwrap();
        for link in relative_links(&text) {
            count += 1;
            let target = base.join(&link);
            if target.exists() {
                continue;
            }
            let rel = normalise(&target, &root);
            if PAGES_WRITTEN_ELSEWHERE.contains(&rel.as_str()) {
                println!("note: {} links to {rel}, not written yet", page.display());
            } else {
                broken.push(format!("{} -> {link}", page.display()));
            }
        }
    }
    assert!(count > 20, "expected the docs to link to each other");
    assert!(
        broken.is_empty(),
        "broken links:\n  {}",
        broken.join("\n  ")
    );
}

/// `p` relative to `root`, both normalised lexically (`..` and `.` removed), with `/` separators.
fn normalise(p: &Path, root: &Path) -> String {
    fn lexical(p: &Path) -> PathBuf {
        let mut out = PathBuf::new();
        for c in p.components() {
            match c {
                std::path::Component::ParentDir => {
                    out.pop();
                }
                std::path::Component::CurDir => {}
                other => out.push(other),
            }
        }
        out
    }
    let (p, root) = (lexical(p), lexical(root));
    p.strip_prefix(&root)
        .unwrap_or(&p)
        .to_string_lossy()
        .replace('\\', "/")
}

#[test]
fn link_extraction() {
    let md =
        "see [a](a.md), [b](https://x.y/z), [c](#top), ![img](img/p.png \"t\") and [d](d.md#sec)";
    assert_eq!(relative_links(md), ["a.md", "img/p.png", "d.md"]);
}
