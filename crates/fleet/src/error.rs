//! Configuration errors that point at the file, line, column and field.
//!
//! Every error carries a `file:line:col` location and a field path (for example
//! `cluster[3].max_unavailable`), plus the source text so miette can draw the
//! offending line. Loading collects all errors it can find instead of stopping at
//! the first one.

use miette::{Diagnostic, NamedSource, SourceSpan};
use std::fmt;
use std::sync::Arc;

/// A source file (fleet file, inventory, CSV) kept for error reporting.
#[derive(Debug, Clone)]
pub struct SourceFile {
    pub name: String,
    pub text: Arc<String>,
}

impl SourceFile {
    pub fn new(name: impl Into<String>, text: impl Into<String>) -> Self {
        SourceFile {
            name: name.into(),
            text: Arc::new(text.into()),
        }
    }

    /// 1-based line and column of a byte offset (column counted in characters).
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        line_col(&self.text, offset)
    }
}

pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
    let col = text[line_start..offset].chars().count() + 1;
    (line, col)
}

/// One configuration error.
#[derive(Debug, Clone, thiserror::Error, Diagnostic)]
#[error("{location}: {field}: {message}")]
pub struct ConfigError {
    /// `file:line:col`, or just `file` when no position is known.
    pub location: String,
    pub file: String,
    pub line: Option<usize>,
    pub col: Option<usize>,
    /// The field the error is about, as a path (`cluster[2].members[1]`).
    pub field: String,
    pub message: String,
    #[help]
    pub help: Option<String>,
    #[source_code]
    src: Option<NamedSource<Arc<String>>>,
    #[label("{field}")]
    span: Option<SourceSpan>,
}

impl ConfigError {
    /// An error at a byte range of a source file.
    pub fn at(
        src: &SourceFile,
        span: std::ops::Range<usize>,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        let start = span.start.min(src.text.len());
        let end = span.end.clamp(start, src.text.len());
        let (line, col) = src.line_col(start);
        ConfigError {
            location: format!("{}:{}:{}", src.name, line, col),
            file: src.name.clone(),
            line: Some(line),
            col: Some(col),
            field: field.into(),
            message: message.into(),
            help: None,
            src: Some(NamedSource::new(src.name.clone(), src.text.clone())),
            span: Some(SourceSpan::new(start.into(), end - start)),
        }
    }

    /// An error at a 1-based line of a file whose text is known.
    pub fn at_line(
        src: &SourceFile,
        line: usize,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        let start = line_start_offset(&src.text, line);
        let end = src.text[start..]
            .find('\n')
            .map(|i| start + i)
            .unwrap_or(src.text.len());
        Self::at(src, start..end, field, message)
    }

    /// An error about a whole file (unreadable, wrong format).
    pub fn file(
        file: impl Into<String>,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        let file = file.into();
        ConfigError {
            location: file.clone(),
            file,
            line: None,
            col: None,
            field: field.into(),
            message: message.into(),
            help: None,
            src: None,
            span: None,
        }
    }

    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }
}

fn line_start_offset(text: &str, line: usize) -> usize {
    if line <= 1 {
        return 0;
    }
    let mut seen = 1;
    for (i, b) in text.bytes().enumerate() {
        if b == b'\n' {
            seen += 1;
            if seen == line {
                return i + 1;
            }
        }
    }
    text.len()
}

/// All errors found while loading a fleet.
#[derive(Debug, Clone, thiserror::Error, Diagnostic)]
pub struct ConfigErrors {
    pub file: String,
    #[related]
    pub errors: Vec<ConfigError>,
}

impl fmt::Display for ConfigErrors {
    /// The headline only; the errors themselves are miette's related diagnostics.
    /// Use [`ConfigErrors::listing`] for a plain-text list.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.errors.len();
        write!(
            f,
            "{} has {} error{}",
            self.file,
            n,
            if n == 1 { "" } else { "s" }
        )
    }
}

impl ConfigErrors {
    /// Headline plus one line per error (`file:line:col: field: message (help: …)`).
    pub fn listing(&self) -> String {
        let mut s = self.to_string();
        for e in &self.errors {
            s.push_str(&format!("\n  {e}"));
            if let Some(h) = &e.help {
                s.push_str(&format!(" (help: {h})"));
            }
        }
        s
    }
}

/// Collects errors during loading, capped so a hopeless file does not flood the terminal.
#[derive(Debug, Default)]
pub struct Errors {
    pub list: Vec<ConfigError>,
    pub dropped: usize,
}

pub const MAX_ERRORS: usize = 100;

impl Errors {
    pub fn push(&mut self, e: ConfigError) {
        if self.list.len() < MAX_ERRORS {
            self.list.push(e);
        } else {
            self.dropped += 1;
        }
    }
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }
    pub fn into_result<T>(self, file: &str, value: T) -> Result<T, ConfigErrors> {
        if self.list.is_empty() {
            Ok(value)
        } else {
            let mut errors = self.list;
            if self.dropped > 0 {
                errors.push(ConfigError::file(
                    file,
                    "",
                    format!("{} more errors not shown", self.dropped),
                ));
            }
            Err(ConfigErrors {
                file: file.to_string(),
                errors,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_col_counts_from_one() {
        let t = "a = 1\nbé = 2\n";
        assert_eq!(line_col(t, 0), (1, 1));
        assert_eq!(line_col(t, 6), (2, 1));
        // after the two-byte é
        assert_eq!(line_col(t, 9), (2, 3));
        // offsets past the end and inside a char do not panic
        assert_eq!(line_col(t, 8), (2, 2));
        assert_eq!(line_col(t, 1000).0, 3);
    }

    #[test]
    fn at_line_points_at_that_line() {
        let s = SourceFile::new("x.csv", "id,region\nh1,\n");
        let e = ConfigError::at_line(&s, 2, "region", "empty");
        assert_eq!(e.location, "x.csv:2:1");
        assert_eq!(e.to_string(), "x.csv:2:1: region: empty");
    }
}
