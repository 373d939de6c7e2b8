//! Normalised forms of names and postcodes, and the table of known
//! alternative given names.
//!
//! Two systems rarely spell a person the same way: one drops the accent in
//! *Zoë*, another the apostrophe in *O'Brien*, a third the hyphen in
//! *Smith-Jones*; one stores `M1 1AE`, another `m11ae`. Comparison happens
//! on the forms produced here, so those differences never count as
//! disagreement.

use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;

/// A name in the form it is compared in: lower case, accents folded to
/// their base letters (`ë` → `e`, and `ß` → `ss`, `æ` → `ae`, `ø` → `o`,
/// `ł` → `l`, which have no decomposition), apostrophes removed
/// (`O'Brien` → `obrien`), and every other character that is not a letter
/// or digit (hyphens, full stops, commas) a word break; runs of spaces
/// become one, and the ends are trimmed.
///
/// ```
/// use kith_core::matching::normalise_name;
/// assert_eq!(normalise_name("  O’Brien "), "obrien");
/// assert_eq!(normalise_name("Zoë"), "zoe");
/// assert_eq!(normalise_name("Smith-Jones"), "smith jones");
/// ```
pub fn normalise_name(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut pending_space = false;
    let mut push = |c: char| {
        if c.is_alphanumeric() {
            if pending_space && !out.is_empty() {
                out.push(' ');
            }
            pending_space = false;
            out.push(c);
        } else {
            pending_space = true;
        }
    };
    // Apostrophes go before decomposition: NFKD turns the acute accent
    // U+00B4, sometimes typed for one, into a space and a combining mark.
    let without_apostrophes = raw.chars().filter(|c| !is_apostrophe(*c));
    for c in without_apostrophes
        .nfkd()
        .filter(|c| !is_combining_mark(*c))
    {
        for lower in c.to_lowercase() {
            match fold_letter(lower) {
                Some(folded) => folded.chars().for_each(&mut push),
                None => push(lower),
            }
        }
    }
    out
}

/// The words of a normalised name: `"Smith-Jones"` → `["smith", "jones"]`.
pub fn name_tokens(raw: &str) -> Vec<String> {
    normalise_name(raw)
        .split(' ')
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .collect()
}

/// A postcode in the form it is compared in: upper case with no spaces
/// (`"m1 1ae"` → `"M11AE"`). Shape is not checked here; see
/// [`is_uk_postcode`](crate::validate::is_uk_postcode).
pub fn normalise_postcode(raw: &str) -> String {
    raw.chars()
        .filter(|c| !c.is_whitespace())
        .flat_map(char::to_uppercase)
        .collect()
}

fn is_apostrophe(c: char) -> bool {
    matches!(
        c,
        '\'' | '\u{2018}' | '\u{2019}' | '\u{201B}' | '\u{02BC}' | '\u{0060}' | '\u{00B4}'
    )
}

/// Letters with no Unicode decomposition that people nonetheless write
/// without their mark.
fn fold_letter(c: char) -> Option<&'static str> {
    Some(match c {
        'ß' => "ss",
        'æ' => "ae",
        'œ' => "oe",
        'ø' => "o",
        'ł' => "l",
        'đ' | 'ð' => "d",
        'þ' => "th",
        'ı' => "i",
        _ => return None,
    })
}

/// The built-in table of known alternative given names, used by
/// [`MatchRules::default`](super::MatchRules::default). Each group is a set
/// of given names taken to be the same name for matching: a diminutive and
/// its full form (*Bill* / *William*), or spellings of one name
/// (*Katherine* / *Catherine*, *Mohammed* / *Muhammad*). A name may sit in
/// more than one group (*Alex*, *Chris*, *Sam*); two names are alternatives
/// when some group holds both. Entries are normalised (see
/// [`normalise_name`]). Deployments replace or extend the table through
/// [`MatchRules::alternative_names`](super::MatchRules::alternative_names).
pub const ALTERNATIVE_GIVEN_NAMES: &[&[&str]] = &[
    &["william", "bill", "billy", "will", "willie", "liam"],
    &["robert", "bob", "bobby", "rob", "robbie", "bert"],
    &[
        "elizabeth",
        "elisabeth",
        "liz",
        "lizzie",
        "beth",
        "betty",
        "eliza",
        "libby",
    ],
    &[
        "katherine",
        "catherine",
        "kathryn",
        "kate",
        "katie",
        "kathy",
        "cathy",
        "kath",
        "cath",
    ],
    &["james", "jim", "jimmy", "jamie"],
    &["margaret", "peggy", "maggie", "meg", "madge"],
    &[
        "mohammed", "mohammad", "mohamed", "muhammad", "muhammed", "mohamad", "mo",
    ],
    &["john", "jack", "johnny", "jon"],
    &["richard", "dick", "rick", "ricky", "rich"],
    &["edward", "ed", "eddie", "ted", "ned"],
    &["thomas", "tom", "tommy"],
    &["anthony", "tony"],
    &["alexander", "alex", "alec", "sandy"],
    &["alexandra", "alex", "lexi"],
    &["christopher", "chris", "kit"],
    &["christine", "chris", "chrissie", "tina"],
    &["michael", "mike", "mick", "mickey"],
    &["daniel", "dan", "danny"],
    &["david", "dave", "davey"],
    &["joseph", "joe", "joey"],
    &["samuel", "sam", "sammy"],
    &["samantha", "sam", "sammie"],
    &["stephen", "steven", "steve", "stevie"],
    &["patricia", "pat", "patsy", "trish"],
    &["patrick", "pat", "paddy"],
    &["susan", "sue", "susie", "suzie"],
    &["deborah", "debra", "debbie", "deb"],
    &["rebecca", "becky", "becca"],
    &["jennifer", "jenny", "jen"],
    &["nicholas", "nick", "nicky"],
    &["benjamin", "ben", "benny"],
    &["matthew", "matt"],
    &["andrew", "andy", "drew"],
    &["charles", "charlie", "chas"],
    &["henry", "harry", "hal"],
    &["frederick", "fred", "freddie"],
    &["sarah", "sara", "sally"],
    &["ann", "anne", "anna", "annie"],
];

/// The built-in table as owned groups, the shape [`MatchRules`](super::MatchRules) holds.
pub(crate) fn default_alternative_names() -> Vec<Vec<String>> {
    ALTERNATIVE_GIVEN_NAMES
        .iter()
        .map(|group| group.iter().map(|n| (*n).to_owned()).collect())
        .collect()
}

/// Whether two normalised single-word given names are known alternatives.
pub(crate) fn are_alternatives(table: &[Vec<String>], a: &str, b: &str) -> bool {
    a != b
        && table
            .iter()
            .any(|group| group.iter().any(|n| n == a) && group.iter().any(|n| n == b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apostrophes_go_accents_fold_and_case_lowers() {
        for (raw, want) in [
            ("O'Brien", "obrien"),
            ("O’Brien", "obrien"),
            ("O`Brien", "obrien"),
            ("OBRIEN", "obrien"),
            ("Zoë", "zoe"),
            ("Zoe\u{308}", "zoe"), // decomposed input: e + combining diaeresis
            ("Siân", "sian"),
            ("Björk Þórsdóttir", "bjork thorsdottir"),
            ("Strauß", "strauss"),
            ("Łukasz", "lukasz"),
            ("Søren", "soren"),
        ] {
            assert_eq!(normalise_name(raw), want, "{raw}");
        }
    }

    #[test]
    fn hyphens_and_runs_of_spaces_become_one_space() {
        assert_eq!(normalise_name("Smith-Jones"), "smith jones");
        assert_eq!(normalise_name("  Smith   Jones  "), "smith jones");
        assert_eq!(normalise_name("Smith – Jones"), "smith jones");
        assert_eq!(normalise_name("St. John-Smythe"), "st john smythe");
        assert_eq!(normalise_name("-Smith-"), "smith");
        assert_eq!(normalise_name(" ' - "), "");
        assert_eq!(name_tokens("Smith-Jones"), ["smith", "jones"]);
        assert!(name_tokens("  ").is_empty());
    }

    #[test]
    fn postcodes_lose_spaces_and_case() {
        assert_eq!(normalise_postcode("m1 1ae"), "M11AE");
        assert_eq!(normalise_postcode(" SW1A  1AA "), "SW1A1AA");
        assert_eq!(normalise_postcode("SW1A1AA"), "SW1A1AA");
    }

    #[test]
    fn the_builtin_table_is_normalised_and_knows_common_alternatives() {
        let table = default_alternative_names();
        for group in &table {
            for name in group {
                assert_eq!(&normalise_name(name), name, "table entry {name:?}");
                assert!(!name.contains(' '), "table entry {name:?} is one word");
            }
        }
        for (a, b) in [
            ("bill", "william"),
            ("bob", "robert"),
            ("liz", "beth"),
            ("kate", "catherine"),
            ("jim", "james"),
            ("peggy", "margaret"),
            ("mo", "muhammad"),
            ("jack", "john"),
        ] {
            assert!(are_alternatives(&table, a, b), "{a}/{b}");
            assert!(are_alternatives(&table, b, a), "{b}/{a}");
        }
        assert!(!are_alternatives(&table, "william", "robert"));
        assert!(!are_alternatives(&table, "william", "william"));
        // Alex is in two groups, but Alexander and Alexandra are not one name.
        assert!(are_alternatives(&table, "alex", "alexandra"));
        assert!(!are_alternatives(&table, "alexander", "alexandra"));
    }
}
