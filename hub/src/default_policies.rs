//! The default policy set, compiled into the binary.
//!
//! `policies/` in the repository is the source of truth; this list embeds
//! it so `kith-demo` and `kith-hub policy init` can lay down a working
//! set anywhere. A test fails if a file is added to `policies/` and not here.

use std::path::Path;

/// Every file of the default set: path relative to the set's folder, and contents.
pub const FILES: &[(&str, &str)] = &[
    (
        "agreements.json",
        include_str!("../../policies/agreements.json"),
    ),
    (
        "default/00-record-forbids.cedar",
        include_str!("../../policies/default/00-record-forbids.cedar"),
    ),
    (
        "default/05-role-kinds.cedar",
        include_str!("../../policies/default/05-role-kinds.cedar"),
    ),
    (
        "default/10-agreement-bounds.cedar",
        include_str!("../../policies/default/10-agreement-bounds.cedar"),
    ),
    (
        "default/20-break-glass.cedar",
        include_str!("../../policies/default/20-break-glass.cedar"),
    ),
    (
        "default/30-data-location.cedar",
        include_str!("../../policies/default/30-data-location.cedar"),
    ),
    (
        "default/40-audit.cedar",
        include_str!("../../policies/default/40-audit.cedar"),
    ),
    (
        "default/50-subscriptions.cedar",
        include_str!("../../policies/default/50-subscriptions.cedar"),
    ),
    (
        "default/agreement-adult-care-integration.cedar",
        include_str!("../../policies/default/agreement-adult-care-integration.cedar"),
    ),
    (
        "default/agreement-children-safeguarding.cedar",
        include_str!("../../policies/default/agreement-children-safeguarding.cedar"),
    ),
    (
        "default/agreement-emergency-services.cedar",
        include_str!("../../policies/default/agreement-emergency-services.cedar"),
    ),
    (
        "kith.cedarschema",
        include_str!("../../policies/kith.cedarschema"),
    ),
    (
        "relationship_types.json",
        include_str!("../../policies/relationship_types.json"),
    ),
    (
        "tests/adult-care-integration.json",
        include_str!("../../policies/tests/adult-care-integration.json"),
    ),
    (
        "tests/audit.json",
        include_str!("../../policies/tests/audit.json"),
    ),
    (
        "tests/break-glass-review.json",
        include_str!("../../policies/tests/break-glass-review.json"),
    ),
    (
        "tests/children-safeguarding.json",
        include_str!("../../policies/tests/children-safeguarding.json"),
    ),
    (
        "tests/data-location.json",
        include_str!("../../policies/tests/data-location.json"),
    ),
    (
        "tests/emergency-services.json",
        include_str!("../../policies/tests/emergency-services.json"),
    ),
    (
        "tests/forbids.json",
        include_str!("../../policies/tests/forbids.json"),
    ),
    (
        "tests/role-kinds.json",
        include_str!("../../policies/tests/role-kinds.json"),
    ),
    (
        "tests/subscriptions.json",
        include_str!("../../policies/tests/subscriptions.json"),
    ),
    (
        "vocabulary.json",
        include_str!("../../policies/vocabulary.json"),
    ),
];

/// Writes the default set into `dir` (creating it). Existing files are
/// overwritten only when `overwrite` is set.
pub fn write_to(dir: &Path, overwrite: bool) -> std::io::Result<()> {
    for (name, contents) in FILES {
        let path = dir.join(name);
        if path.exists() && !overwrite {
            continue;
        }
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(path, contents)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn walk(dir: &Path, base: &Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, base, out);
            } else {
                out.push(
                    path.strip_prefix(base)
                        .unwrap()
                        .to_string_lossy()
                        .replace('\\', "/"),
                );
            }
        }
    }

    #[test]
    fn embeds_exactly_the_repository_set() {
        let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies");
        let mut on_disk = Vec::new();
        walk(&base, &base, &mut on_disk);
        on_disk.sort();
        let embedded: Vec<String> = FILES.iter().map(|(n, _)| n.to_string()).collect();
        assert_eq!(
            embedded, on_disk,
            "update hub/src/default_policies.rs to match policies/"
        );
        for (name, contents) in FILES {
            assert_eq!(
                std::fs::read_to_string(base.join(name)).unwrap(),
                *contents,
                "{name} differs"
            );
        }
    }

    #[test]
    fn the_embedded_set_loads() {
        let dir = tempfile::tempdir().unwrap();
        write_to(dir.path(), false).unwrap();
        kith_policy::PolicySet::load(dir.path()).unwrap();
    }
}
