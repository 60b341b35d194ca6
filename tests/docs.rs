//! The README as a front door: short, two set-up commands, and every link it (or a page in
//! `docs/`) makes to a file of the repository leads somewhere.

use std::path::Path;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn read(name: &str) -> String {
    std::fs::read_to_string(Path::new(ROOT).join(name))
        .unwrap_or_else(|error| panic!("{name}: {error}"))
}

/// The section of `markdown` under the `## heading`, up to the next `## `.
fn section<'a>(markdown: &'a str, heading: &str) -> &'a str {
    let start = markdown
        .find(&format!("\n## {heading}\n"))
        .unwrap_or_else(|| panic!("no section {heading}"));
    let rest = &markdown[start + 1..];
    let end = rest[3..].find("\n## ").map_or(rest.len(), |end| end + 3);
    &rest[..end]
}

#[test]
fn the_readme_fits_on_a_few_screens_and_sets_up_with_two_commands() {
    let readme = read("README.md");
    let lines = readme.lines().count();
    assert!(
        lines <= 300,
        "README.md is {lines} lines; move detail to docs/"
    );
    let set_up = section(&readme, "Set up");
    let commands: Vec<&str> = set_up
        .split("```sh\n")
        .skip(1)
        .map(|block| block.split("```").next().unwrap_or_default().trim())
        .collect();
    assert_eq!(
        commands,
        ["cargo run --release -- --port 8080", "cargo test"],
        "the set-up section's commands"
    );
}

/// README.md and every page in `docs/`.
fn pages() -> Vec<String> {
    let mut pages = vec!["README.md".to_owned()];
    for entry in std::fs::read_dir(Path::new(ROOT).join("docs")).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        if name.ends_with(".md") {
            pages.push(format!("docs/{name}"));
        }
    }
    pages
}

#[test]
fn every_link_to_a_file_of_the_repository_leads_to_one() {
    let pages = pages();
    let mut broken = Vec::new();
    for page in &pages {
        let text = read(page);
        let folder = Path::new(page).parent().unwrap_or(Path::new(""));
        for target in text.split("](").skip(1) {
            let target = target.split(')').next().unwrap_or_default();
            let file = target.split('#').next().unwrap_or_default();
            if file.is_empty() || file.contains("://") || file.starts_with("mailto:") {
                continue;
            }
            if !Path::new(ROOT).join(folder).join(file).exists() {
                broken.push(format!("{page}: {target}"));
            }
        }
    }
    assert!(broken.is_empty(), "links to missing files: {broken:#?}");
}

/// A path of the repository named in code (`src/...`, `bench/...`, `tests/...`), as a reader
/// would look it up: what follows it (a command's arguments, a sentence's comma) is not part
/// of it. The code has moved between folders before, and the pages have to follow it. What
/// a run writes (ignored by git, such as the browser tests' screenshots) need not be there.
#[test]
fn every_file_a_page_names_in_code_exists() {
    let written_by_runs: Vec<String> = read(".gitignore")
        .lines()
        .map(|line| line.trim().trim_start_matches('/').to_owned())
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .collect();
    let mut missing = Vec::new();
    for page in pages() {
        let text = read(&page);
        for span in text.split('`').skip(1).step_by(2) {
            let Some(path) = span.split_whitespace().next() else {
                continue;
            };
            let path = path.trim_end_matches([',', '.', ':', ';', ')']);
            let in_repository = ["src/", "bench/", "tests/", "docs/", ".ci/"]
                .iter()
                .any(|folder| path.starts_with(folder));
            let written_by_a_run = written_by_runs
                .iter()
                .any(|ignored| path.starts_with(ignored.as_str()));
            if in_repository && !written_by_a_run && !Path::new(ROOT).join(path).exists() {
                missing.push(format!("{page}: {path}"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "pages name files that are not there: {missing:#?}"
    );
}

/// The README's layout table names every module of each folder it lists, in its first
/// column or (a folder inside one of those) in its second: a newcomer finds a file by its
/// row, and a file added to such a folder must be added to the row too.
#[test]
fn the_layout_table_names_every_module_of_its_folders() {
    let readme = read("README.md");
    let mut unnamed = Vec::new();
    for row in readme.lines().filter(|line| line.starts_with("| `")) {
        let named: Vec<&str> = row.split('`').skip(1).step_by(2).collect();
        let top: Vec<String> = row
            .split('|')
            .nth(1)
            .unwrap_or_default()
            .split('`')
            .skip(1)
            .step_by(2)
            .filter(|name| name.ends_with('/'))
            .map(str::to_owned)
            .collect();
        let nested = top.iter().flat_map(|parent| {
            named
                .iter()
                .filter(|name| name.ends_with('/') && **name != parent.as_str())
                .map(move |name| format!("{parent}{name}"))
        });
        let folders: Vec<String> = top.iter().cloned().chain(nested).collect();
        for folder in folders {
            let Ok(entries) = std::fs::read_dir(Path::new(ROOT).join("src").join(&folder)) else {
                continue;
            };
            for entry in entries {
                let entry = entry.unwrap();
                let file = entry.file_name().to_string_lossy().into_owned();
                let module = match file.strip_suffix(".rs") {
                    Some("mod") => continue,
                    Some(stem) => stem.to_owned(),
                    None => format!("{file}/"),
                };
                if !named.contains(&module.as_str()) {
                    unnamed.push(format!("src/{folder}{file}"));
                }
            }
        }
    }
    assert!(
        unnamed.is_empty(),
        "the README's layout table leaves out: {unnamed:#?}"
    );
}
