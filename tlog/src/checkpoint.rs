//! C2SP `tlog-checkpoint` bodies (<https://c2sp.org/tlog-checkpoint>): the text a
//! log signs to commit to its tree head.
//!
//! A checkpoint is the note text
//!
//! ```text
//! <origin>\n<tree size, decimal>\n<base64 root hash>\n[<extension line>\n]*
//! ```
//!
//! Parsing is strict (canonical decimal, canonical base64 of exactly 32 bytes,
//! non-empty lines, no control characters) because two byte strings that parse to
//! the same checkpoint would let a log show different signed texts for the same
//! tree head. A [`Checkpoint`] can only be built valid, so
//! `Checkpoint::parse(&c.to_body()) == Ok(c)` always holds.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::error::CheckpointError;
use crate::hash::Hash;

/// A parsed, valid checkpoint body.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Checkpoint {
    origin: String,
    size: u64,
    root_hash: Hash,
    extensions: Vec<String>,
}

fn check_line(line: &str, number: usize) -> Result<(), CheckpointError> {
    // The signed-note spec bans ASCII control characters (below U+0020) other than
    // newline; inside a line a newline is banned too.
    if line.chars().any(|c| u32::from(c) < 0x20) {
        return Err(CheckpointError::ControlCharacter { line: number });
    }
    Ok(())
}

impl Checkpoint {
    /// A checkpoint with no extension lines. The origin must be non-empty and free
    /// of control characters (including newlines).
    pub fn new(origin: &str, size: u64, root_hash: Hash) -> Result<Self, CheckpointError> {
        if origin.is_empty() {
            return Err(CheckpointError::EmptyOrigin);
        }
        check_line(origin, 1)?;
        Ok(Self {
            origin: origin.to_owned(),
            size,
            root_hash,
            extensions: Vec::new(),
        })
    }

    /// Appends an extension line (non-empty, no control characters).
    pub fn with_extension(mut self, line: &str) -> Result<Self, CheckpointError> {
        let number = 4 + self.extensions.len();
        if line.is_empty() {
            return Err(CheckpointError::EmptyExtension { line: number });
        }
        check_line(line, number)?;
        self.extensions.push(line.to_owned());
        Ok(self)
    }

    /// The log identity line.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The tree size (number of leaves).
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The RFC 9162 root hash at that size.
    pub fn root_hash(&self) -> &Hash {
        &self.root_hash
    }

    /// Extension lines, without their newlines (usually none).
    pub fn extensions(&self) -> &[String] {
        &self.extensions
    }

    /// The note text: `"<origin>\n<size>\n<base64 root>\n"` plus extension lines.
    pub fn to_body(&self) -> String {
        let mut body = format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            STANDARD.encode(self.root_hash)
        );
        for ext in &self.extensions {
            body.push_str(ext);
            body.push('\n');
        }
        body
    }

    /// Strictly parses a checkpoint body (the verified text of a signed note).
    pub fn parse(body: &str) -> Result<Self, CheckpointError> {
        let inner = body
            .strip_suffix('\n')
            .ok_or(CheckpointError::MissingFinalNewline)?;
        let lines: Vec<&str> = inner.split('\n').collect();
        if lines.len() < 3 {
            return Err(CheckpointError::TooFewLines(lines.len()));
        }
        let mut cp = Self::new(lines[0], parse_size(lines[1])?, parse_root(lines[2])?)?;
        for line in &lines[3..] {
            cp = cp.with_extension(line)?;
        }
        Ok(cp)
    }
}

fn parse_size(line: &str) -> Result<u64, CheckpointError> {
    let invalid = || CheckpointError::InvalidSize(line.to_owned());
    let canonical = !line.is_empty()
        && line.bytes().all(|b| b.is_ascii_digit())
        && (line == "0" || !line.starts_with('0'));
    if !canonical {
        return Err(invalid());
    }
    line.parse::<u64>().map_err(|_| invalid())
}

fn parse_root(line: &str) -> Result<Hash, CheckpointError> {
    let bytes = STANDARD
        .decode(line)
        .map_err(|e| CheckpointError::RootHashBase64(e.to_string()))?;
    bytes
        .as_slice()
        .try_into()
        .map_err(|_| CheckpointError::RootHashLength(bytes.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROOT_B64: &str = "CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=";

    #[test]
    fn parses_the_spec_example() {
        // Body of the example in c2sp.org/tlog-checkpoint.
        let body = format!("example.com/behind-the-sofa\n20852163\n{ROOT_B64}\n");
        let cp = Checkpoint::parse(&body).unwrap();
        assert_eq!(cp.origin(), "example.com/behind-the-sofa");
        assert_eq!(cp.size(), 20852163);
        assert_eq!(cp.root_hash()[..4], [0x0a, 0xc5, 0x18, 0x6a]);
        assert!(cp.extensions().is_empty());
        assert_eq!(cp.to_body(), body);
    }

    #[test]
    fn keeps_extension_lines() {
        let body = format!("o\n0\n{ROOT_B64}\nfoo bar\nbaz\n");
        let cp = Checkpoint::parse(&body).unwrap();
        assert_eq!(cp.size(), 0);
        assert_eq!(cp.extensions(), ["foo bar", "baz"]);
        assert_eq!(cp.to_body(), body);
    }

    #[test]
    fn rejects_malformed_bodies() {
        let cases: Vec<(String, CheckpointError)> = vec![
            (
                format!("o\n1\n{ROOT_B64}"),
                CheckpointError::MissingFinalNewline,
            ),
            ("o\n1\n".into(), CheckpointError::TooFewLines(2)),
            ("".into(), CheckpointError::MissingFinalNewline),
            (format!("\n1\n{ROOT_B64}\n"), CheckpointError::EmptyOrigin),
            (
                format!("o\n01\n{ROOT_B64}\n"),
                CheckpointError::InvalidSize("01".into()),
            ),
            (
                format!("o\n00\n{ROOT_B64}\n"),
                CheckpointError::InvalidSize("00".into()),
            ),
            (
                format!("o\n+1\n{ROOT_B64}\n"),
                CheckpointError::InvalidSize("+1".into()),
            ),
            (
                format!("o\n-1\n{ROOT_B64}\n"),
                CheckpointError::InvalidSize("-1".into()),
            ),
            (
                format!("o\n\n{ROOT_B64}\n"),
                CheckpointError::InvalidSize("".into()),
            ),
            (
                format!("o\n18446744073709551616\n{ROOT_B64}\n"),
                CheckpointError::InvalidSize("18446744073709551616".into()),
            ),
            (
                format!("o\n1 \n{ROOT_B64}\n"),
                CheckpointError::InvalidSize("1 ".into()),
            ),
            ("o\n1\nAAAA\n".into(), CheckpointError::RootHashLength(3)),
            (
                format!("o\n1\n{ROOT_B64}\n\n"),
                CheckpointError::EmptyExtension { line: 4 },
            ),
            (
                format!("o\r\n1\n{ROOT_B64}\n"),
                CheckpointError::ControlCharacter { line: 1 },
            ),
            (
                format!("o\n1\n{ROOT_B64}\nx\ty\n"),
                CheckpointError::ControlCharacter { line: 4 },
            ),
        ];
        for (body, want) in cases {
            assert_eq!(Checkpoint::parse(&body), Err(want), "{body:?}");
        }
        // Non-canonical or invalid base64: missing padding, bad characters,
        // URL-safe alphabet, non-zero trailing bits.
        for root in [
            "CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I",
            "CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I==",
            "CsUYapGGPo4dkMgIAUqom_Xajj7h2fB2MPA3j2jxq2I=",
            "CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2J=",
            " CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=",
        ] {
            let err = Checkpoint::parse(&format!("o\n1\n{root}\n")).unwrap_err();
            assert!(
                matches!(err, CheckpointError::RootHashBase64(_)),
                "{root}: {err:?}"
            );
        }
    }

    #[test]
    fn constructors_validate() {
        assert_eq!(
            Checkpoint::new("", 1, [0; 32]),
            Err(CheckpointError::EmptyOrigin)
        );
        assert_eq!(
            Checkpoint::new("a\nb", 1, [0; 32]),
            Err(CheckpointError::ControlCharacter { line: 1 })
        );
        let cp = Checkpoint::new("a", 1, [0; 32]).unwrap();
        assert_eq!(
            cp.clone().with_extension(""),
            Err(CheckpointError::EmptyExtension { line: 4 })
        );
        assert_eq!(
            cp.with_extension("x\ny"),
            Err(CheckpointError::ControlCharacter { line: 4 })
        );
    }
}
