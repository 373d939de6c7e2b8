//! The controlled vocabulary (`vocabulary.json`): the words agreements and
//! relationship types may use, so a typo is rejected at load.

use std::collections::HashSet;
use std::path::Path;

use serde::Deserialize;

use crate::error::Problem;

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Vocabulary {
    #[serde(rename = "_comment", default)]
    _comment: Option<String>,
    pub authority_kinds: HashSet<String>,
    pub jurisdictions: HashSet<String>,
    pub roles: HashSet<String>,
    pub purposes: HashSet<String>,
    pub categories: HashSet<String>,
    pub sensitivities: HashSet<String>,
    pub residencies: HashSet<String>,
}

impl Vocabulary {
    pub(crate) fn parse(path: &Path, text: &str) -> Result<Vocabulary, Problem> {
        serde_json::from_str(text).map_err(|e| {
            Problem::at(
                path,
                Some(e.line()),
                format!("not a valid vocabulary file: {e}"),
            )
        })
    }

    /// Checks every word in `words` is in `allowed`; reports the others.
    pub(crate) fn check<'a>(
        list: &HashSet<String>,
        list_name: &str,
        words: impl IntoIterator<Item = &'a String>,
        what: &str,
        file: &Path,
        problems: &mut Vec<Problem>,
    ) {
        for w in words {
            if !list.contains(w) {
                problems.push(Problem::new(
                    file,
                    format!("{what}: {w:?} is not in vocabulary.json {list_name}"),
                ));
            }
        }
    }
}
